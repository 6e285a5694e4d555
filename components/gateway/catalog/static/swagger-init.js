// Renders the version's document (same origin, the portal's session cookie) with Swagger UI.
window.addEventListener("load", function () {
  var el = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: el.dataset.url, dom_id: "#swagger-ui", deepLinking: true, withCredentials: true });
});
