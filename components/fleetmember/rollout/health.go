package rollout

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a member as the automation reaches it.
type Cluster struct {
	Name       string `json:"name"`
	Kubeconfig string `json:"kubeconfig"`
	// Namespaces whose Deployments are the add-ons that must be available (default kplane-system).
	Namespaces []string `json:"namespaces,omitempty"`
	// Pull: the member's own Argo CD syncs it, its Applications are in ArgoCDNamespace on the
	// member (default argocd).
	Pull            bool   `json:"pull,omitempty"`
	ArgoCDNamespace string `json:"argoCDNamespace,omitempty"`
	// Environment the member belongs to (a label of its metrics).
	Environment string `json:"environment,omitempty"`
}

func (c Cluster) argoCDNamespace() string { return cmp.Or(c.ArgoCDNamespace, "argocd") }

// Client is a clientset for the cluster, with a short timeout (a health check must not hang).
func (c Cluster) Client(timeout time.Duration) (kubernetes.Interface, *rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: kubeconfig %s: %w", c.Name, c.Kubeconfig, err)
	}
	cfg.Timeout = timeout
	cs, err := kubernetes.NewForConfig(cfg)
	return cs, cfg, err
}

// observed is a clientset (and a dynamic client) of the cluster whose transport records the API
// server's serving certificate.
func (c Cluster) observed(timeout time.Duration) (kubernetes.Interface, dynamic.Interface, *certificateCapture, error) {
	_, cfg, err := c.Client(timeout)
	if err != nil {
		return nil, nil, nil, err
	}
	capture := &certificateCapture{}
	cfg.WrapTransport = capture.wrap
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	return cs, dyn, capture, err
}

// Health is one check of one cluster.
type Health struct {
	Cluster     string `json:"cluster"`
	Environment string `json:"environment,omitempty"`
	// Reachable: the API server answered ready.
	Reachable  bool      `json:"reachable"`
	Healthy    bool      `json:"healthy"`
	Reason     string    `json:"reason,omitempty"`
	Version    string    `json:"version,omitempty"`
	Nodes      int       `json:"nodes"`
	NodesReady int       `json:"nodesReady"`
	AddOns     int       `json:"addOns"`
	AddOnsOK   int       `json:"addOnsAvailable"`
	Checked    time.Time `json:"checked"`
	Seconds    float64   `json:"seconds"`
	// What Observe reads besides health (signals.go): the API server's serving certificate's
	// expiry, kplane's admission policies' enforcement, the Velero schedules' last backups, the
	// restore drills' last evidence.
	CertificateExpiry time.Time `json:"certificateExpiry,omitzero"`
	Admission         Admission `json:"admission"`
	Backups           []Backup  `json:"backups,omitempty"`
	Drills            []Drill   `json:"drills,omitempty"`
}

// Check is the health of c: the API server ready (/readyz), its version, every node Ready, every
// Deployment of the add-on namespaces available.
func Check(ctx context.Context, c Cluster, timeout time.Duration) Health {
	return check(ctx, c, timeout, false)
}

// Observe is Check and what the fleet's monitoring reads besides (signals.go).
func Observe(ctx context.Context, c Cluster, timeout time.Duration) Health {
	return check(ctx, c, timeout, true)
}

func check(ctx context.Context, c Cluster, timeout time.Duration, signals bool) (h Health) {
	start := time.Now()
	h = Health{Cluster: c.Name, Environment: c.Environment, Checked: start}
	defer func() { h.Seconds = time.Since(start).Seconds() }() // the result's, on every return
	fail := func(format string, args ...any) Health {
		h.Reason = fmt.Sprintf(format, args...)
		return h
	}
	cs, dyn, capture, err := c.observed(timeout)
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fail("API server not ready: %s", firstLine(err.Error()))
	} else if strings.TrimSpace(string(body)) != "ok" {
		return fail("API server not ready: %s", firstLine(string(body)))
	}
	h.Reachable = true
	h.CertificateExpiry = capture.expiry()
	if signals {
		h.Admission, h.Backups, h.Drills = admission(ctx, cs, dyn), backups(ctx, dyn), drills(ctx, cs)
	}
	if v, err := cs.Discovery().ServerVersion(); err == nil {
		h.Version = v.GitVersion
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail("nodes: %s", firstLine(err.Error()))
	}
	var notReady []string
	for _, n := range nodes.Items {
		h.Nodes++
		ready := false
		for _, cond := range n.Status.Conditions {
			ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
		}
		if ready {
			h.NodesReady++
		} else {
			notReady = append(notReady, n.Name)
		}
	}
	if h.Nodes == 0 {
		return fail("no nodes")
	}
	if len(notReady) > 0 {
		return fail("nodes not ready: %s", strings.Join(notReady, ", "))
	}
	namespaces := c.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{"kplane-system"}
	}
	var unavailable []string
	for _, ns := range namespaces {
		deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fail("add-ons in %s: %s", ns, firstLine(err.Error()))
		}
		for _, d := range deps.Items {
			h.AddOns++
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			if d.Status.AvailableReplicas >= want {
				h.AddOnsOK++
			} else {
				unavailable = append(unavailable, fmt.Sprintf("%s/%s (%d/%d)", ns, d.Name, d.Status.AvailableReplicas, want))
			}
		}
	}
	if len(unavailable) > 0 {
		return fail("add-ons not available: %s", strings.Join(unavailable, ", "))
	}
	h.Healthy = true
	return h
}

// CheckAll checks the clusters concurrently; the result is in the clusters' order.
func CheckAll(ctx context.Context, clusters []Cluster, timeout time.Duration) []Health {
	return each(clusters, func(c Cluster) Health { return Check(ctx, c, timeout) })
}

// ObserveAll observes the clusters concurrently; the result is in the clusters' order.
func ObserveAll(ctx context.Context, clusters []Cluster, timeout time.Duration) []Health {
	return each(clusters, func(c Cluster) Health { return Observe(ctx, c, timeout) })
}

func each(clusters []Cluster, f func(Cluster) Health) []Health {
	out := make([]Health, len(clusters))
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = f(c) }()
	}
	wg.Wait()
	return out
}

// Preflight is what registering a member needs of its kubeconfig: reachable, ready, and allowed
// to create what kplane puts there. The error says which and how to fix it.
func Preflight(ctx context.Context, c Cluster, timeout time.Duration) error {
	cs, cfg, err := c.Client(timeout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Errorf("cluster %s: unreachable at %s: %s; check the kubeconfig's server and the network", c.Name, cfg.Host, firstLine(err.Error()))
	}
	type kind struct{ group, resource string }
	needs := []kind{{"", "namespaces"}, {"", "serviceaccounts"}, {"", "secrets"},
		{"rbac.authorization.k8s.io", "clusterroles"}, {"rbac.authorization.k8s.io", "rolebindings"}}
	if c.Pull { // its Argo CD's entry, AppProject and Applications
		needs = append(needs, kind{"argoproj.io", "appprojects"}, kind{"argoproj.io", "applications"})
	}
	for _, need := range needs {
		review, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authzv1.ResourceAttributes{Verb: "create", Group: need.group, Resource: need.resource}}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("cluster %s: access review: %s", c.Name, firstLine(err.Error()))
		}
		if !review.Status.Allowed {
			return fmt.Errorf("cluster %s: the kubeconfig's user may not create %s: registering needs to create namespaces, serviceaccounts, secrets, clusterroles and rolebindings (pull mode: Argo CD's appprojects and applications too); use an administrator's kubeconfig for registration (Argo CD gets a narrow one)", c.Name, need.resource)
		}
	}
	if c.Pull {
		return argoCDReady(ctx, cs, fmt.Sprintf("cluster %s (mode pull: its own Argo CD syncs it)", c.Name), c.argoCDNamespace())
	}
	return nil
}

// PreflightManagement is what the members' Argo CD entries need of the management cluster: Argo
// CD installed in namespace (its argocd-cm there), told to skip the kinds a member's credentials
// may not list (resource.respectRBAC normal or strict; without it, Argo CD fails every sync to a
// member with "forbidden") and to sync as the AppProjects' deployers (impersonation).
func PreflightManagement(ctx context.Context, kubeconfig, namespace string, timeout time.Duration) error {
	cs, _, err := Cluster{Name: "management", Kubeconfig: kubeconfig}.Client(timeout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return argoCDReady(ctx, cs, "management cluster", namespace)
}

// argoCDReady: Argo CD installed in namespace of the cluster (who) and set to respect RBAC.
func argoCDReady(ctx context.Context, cs kubernetes.Interface, who, namespace string) error {
	cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, "argocd-cm", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s: no Argo CD in namespace %s (argocd-cm not found): install Argo CD there, or set argoCDNamespace", who, namespace)
	}
	if err != nil {
		return fmt.Errorf("%s: reading %s/argocd-cm: %s", who, namespace, firstLine(err.Error()))
	}
	if v := cm.Data["resource.respectRBAC"]; v != "normal" && v != "strict" {
		return fmt.Errorf(`%s: Argo CD's %s/argocd-cm has resource.respectRBAC %q: set it to "normal" (Helm chart: configs.cm."resource.respectRBAC"); members let Argo CD read the kinds of their render only, and without it every sync to them fails as forbidden`, who, namespace, v)
	}
	if v := cm.Data["application.sync.impersonation.enabled"]; v != "true" {
		return fmt.Errorf(`%s: Argo CD's %s/argocd-cm has application.sync.impersonation.enabled %q: set it to "true" (Helm chart: configs.cm."application.sync.impersonation.enabled"); the platform and its admission policies sync as their own deployers on each member, which Argo CD does only with impersonation`, who, namespace, v)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// WriteTable prints the health of the fleet as a table.
func WriteTable(w io.Writer, hs []Health) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tHEALTH\tVERSION\tNODES\tADD-ONS\tCHECK\tREASON")
	for _, h := range hs {
		state := "green"
		if !h.Healthy {
			state = "RED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d/%d\t%.0f ms\t%s\n", h.Cluster, state, h.Version, h.NodesReady, h.Nodes, h.AddOnsOK, h.AddOns, h.Seconds*1000, h.Reason)
	}
	return tw.Flush()
}

// WriteJSON prints the health of the fleet as JSON.
func WriteJSON(w io.Writer, hs []Health) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"clusters": hs, "healthy": countHealthy(hs), "total": len(hs)})
}

func countHealthy(hs []Health) int {
	n := 0
	for _, h := range hs {
		if h.Healthy {
			n++
		}
	}
	return n
}

// dynamic is a dynamic client for the cluster (Argo CD's objects on a pull member).
func (c Cluster) dynamic(timeout time.Duration) (dynamic.Interface, error) {
	_, cfg, err := c.Client(timeout)
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}
