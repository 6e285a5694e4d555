package identity

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// AdminRole is the realm role the admin group carries: the browser flow asks its holders for a
// second factor.
const AdminRole = "platform-admin"

// BindCredentialPlaceholder stands for the LDAP bind password in the realm representation; the
// realm sync puts the real one (from its Secret) in its place when it talks to Keycloak.
const BindCredentialPlaceholder = "${KPLANE_LDAP_BIND_CREDENTIAL}"

// Representation is the realm as Keycloak's admin API (and its import) reads it: a RealmRepresentation.
// Its settings pass kplane's identity policies (password policy, brute-force lockout, token
// lifetimes, OTP for administrators).
func Representation(args Args) map[string]any {
	a := args.withDefaults()
	groups := []any{
		// The admin console is for administrators (the realm's administration) and auditors
		// (read-only: users, events, settings); everybody else has the account console only.
		map[string]any{"name": a.AdminGroup, "realmRoles": []any{AdminRole}, "clientRoles": map[string]any{"realm-management": []any{"realm-admin"}}},
		map[string]any{"name": a.AuditorGroup, "clientRoles": map[string]any{"realm-management": []any{"view-realm", "view-users", "view-events", "view-clients"}}},
	}
	for _, t := range a.Teams {
		groups = append(groups, map[string]any{"name": t.Name})
	}
	mapper := func(name, kind string, config map[string]any) map[string]any {
		return map[string]any{"name": name, "protocol": "openid-connect", "protocolMapper": kind, "config": config}
	}
	rep := map[string]any{
		"realm": a.Realm, "enabled": true, "displayName": a.Realm,
		"sslRequired":    "external",
		"passwordPolicy": "length(12) and upperCase(1) and lowerCase(1) and digits(1) and specialChars(1) and notUsername and passwordHistory(3)",
		// Lock after 5 failures for 1 minute, doubling up to 15 minutes (KISA: <= 10 failures).
		"bruteForceProtected": true, "failureFactor": 5, "waitIncrementSeconds": 60, "maxFailureWaitSeconds": 900, "permanentLockout": false,
		"accessTokenLifespan": 300, "ssoSessionIdleTimeout": 1800, "ssoSessionMaxLifespan": 36000,
		// Login and admin events for the audit trail (30 days in Keycloak; shipped to the log store).
		"eventsEnabled": true, "eventsExpiration": 2592000, "adminEventsEnabled": true, "adminEventsDetailsEnabled": true,
		"eventsListeners": []any{"jboss-logging"}, // the log lines Fluent Bit ships (Audit)
		"roles":           map[string]any{"realm": []any{map[string]any{"name": AdminRole, "description": "platform administrator: logs in with a second factor"}}},
		"groups":          groups,
		"clients": []any{map[string]any{
			"clientId": a.ClusterClientID, "name": "Kubernetes cluster login", "protocol": "openid-connect", "enabled": true,
			// Its tokens carry its own roles only: no other client lands in their audience.
			"fullScopeAllowed": false,
			"publicClient":     true, "standardFlowEnabled": true, "directAccessGrantsEnabled": false, "implicitFlowEnabled": false,
			"serviceAccountsEnabled": false, "redirectUris": a.RedirectURIs, "webOrigins": []any{},
			"attributes": map[string]any{"pkce.code.challenge.method": "S256"},
			"protocolMappers": []any{
				// Flat group names (no "/" paths) in a top-level claim, as the API server maps them.
				mapper("groups", "oidc-group-membership-mapper", map[string]any{"claim.name": "groups", "full.path": "false",
					"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true"}),
				mapper("audience", "oidc-audience-mapper", map[string]any{"included.client.audience": a.ClusterClientID,
					"id.token.claim": "true", "access.token.claim": "true"}),
			},
		}},
		"browserFlow":         "kplane-browser",
		"authenticationFlows": loginFlows("kplane-browser", true, "kplane-browser-forms", "kplane-admin-second-factor"),
		"authenticatorConfig": []any{map[string]any{"alias": "kplane-admin-role", "config": map[string]any{"condUserRole": AdminRole, "negate": "false"}}},
	}
	addTools(rep, a)
	addAPIClients(rep, a)
	addIdentityProviders(rep, a)
	if l := a.LDAP; l != nil {
		vendor := l.Vendor
		if vendor == "" {
			vendor = "other"
		}
		user, uuid, classes, member, firstName := "uid", "entryUUID", "inetOrgPerson, organizationalPerson", "member", "cn"
		if vendor == "ad" {
			user, uuid, classes, firstName = "sAMAccountName", "objectGUID", "person, organizationalPerson, user", "givenName"
		}
		list := func(v string) []any { return []any{v} }
		rep["components"] = map[string]any{"org.keycloak.storage.UserStorageProvider": []any{map[string]any{
			"name": "ldap", "providerId": "ldap",
			"config": map[string]any{
				"enabled": list("true"), "vendor": list(string(vendor)), "connectionUrl": list(l.URL), "authType": list("simple"),
				"bindDn": list(l.BindDN), "bindCredential": list(BindCredentialPlaceholder), "usersDn": list(l.UsersDN),
				"usernameLDAPAttribute": list(user), "rdnLDAPAttribute": list(user), "uuidLDAPAttribute": list(uuid),
				"userObjectClasses": list(classes), "searchScope": list("1"), "editMode": list("READ_ONLY"),
				"importEnabled": list("true"), "syncRegistrations": list("false"), "pagination": list("true"),
				"fullSyncPeriod": list("-1"), "changedSyncPeriod": list("-1"), "trustEmail": list("true"),
			},
			"subComponents": map[string]any{"org.keycloak.storage.ldap.mappers.LDAPStorageMapper": []any{
				// (A realm created from a representation gets only the mappers it lists.)
				attribute("username", user, "username", true), attribute("email", "mail", "email", false),
				attribute("first name", firstName, "firstName", false), attribute("last name", "sn", "lastName", false),
				map[string]any{
					"name": "groups", "providerId": "group-ldap-mapper",
					"config": map[string]any{
						"groups.dn": list(l.GroupsDN), "group.name.ldap.attribute": list("cn"), "group.object.classes": list("groupOfNames"),
						"membership.ldap.attribute": list(member), "membership.attribute.type": list("DN"), "membership.user.ldap.attribute": list(user),
						"mode": list("READ_ONLY"), "user.roles.retrieve.strategy": list("LOAD_GROUPS_BY_MEMBER_ATTRIBUTE"),
						"preserve.group.inheritance": list("false"), "ignore.missing.groups": list("false"), "drop.non.existing.groups.during.sync": list("false"),
						"memberof.ldap.attribute": list("memberOf"),
					},
				}}},
		}}}
	}
	return rep
}

// addAPIClients adds a confidential client per API client: the client-credentials grant only,
// its own audience only (fullScopeAllowed false), no redirect and no user login.
func addAPIClients(rep map[string]any, a Args) {
	clients := rep["clients"].([]any)
	for _, c := range a.APIClients {
		clients = append(clients, map[string]any{
			"clientId": c.ClientID, "name": c.ClientID, "protocol": "openid-connect", "enabled": true,
			"publicClient": false, "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": true,
			"standardFlowEnabled": false, "directAccessGrantsEnabled": false, "implicitFlowEnabled": false,
			"redirectUris": []any{}, "webOrigins": []any{}, "fullScopeAllowed": false,
			"attributes": map[string]any{"kplane.io/owner": c.Owner},
		})
	}
	rep["clients"] = clients
}

// addTools adds a public PKCE client per tool, its client roles, the groups' role mappings and
// a "roles" claim with the user's roles in that tool.
func addTools(rep map[string]any, a Args) {
	if len(a.Tools) == 0 {
		return
	}
	clientRoles := map[string]any{}
	groupRoles := map[string]map[string][]any{} // group -> client -> roles
	access := map[string][]string{}             // group -> tool access roles
	clients := rep["clients"].([]any)
	for _, t := range a.Tools {
		var roles []any
		for _, role := range slices.Sorted(maps.Keys(t.Roles)) {
			roles = append(roles, map[string]any{"name": role})
			for _, g := range t.Roles[role] {
				if groupRoles[g] == nil {
					groupRoles[g] = map[string][]any{}
				}
				groupRoles[g][t.Name] = append(groupRoles[g][t.Name], role)
			}
		}
		clientRoles[t.Name] = roles
		for _, gs := range t.Roles {
			for _, g := range gs {
				if !slices.Contains(access[g], ToolAccessRole(t.Name)) {
					access[g] = append(access[g], ToolAccessRole(t.Name))
				}
			}
		}
		rep["roles"].(map[string]any)["realm"] = append(rep["roles"].(map[string]any)["realm"].([]any),
			map[string]any{"name": ToolAccessRole(t.Name), "description": "may log in to " + t.Name})
		flows, config := toolFlows(t.Name)
		rep["authenticationFlows"] = append(rep["authenticationFlows"].([]any), flows...)
		rep["authenticatorConfig"] = append(rep["authenticatorConfig"].([]any), config)
		clients = append(clients, map[string]any{
			// (By alias: the realm sync puts the flow's id.)
			"authenticationFlowBindingOverrides": map[string]any{"browser": "kplane-" + t.Name + "-browser"},
			"clientId":                           t.Name, "name": t.Name, "protocol": "openid-connect", "enabled": true,
			"publicClient": true, "standardFlowEnabled": true, "directAccessGrantsEnabled": false, "implicitFlowEnabled": false,
			"serviceAccountsEnabled": false, "redirectUris": t.RedirectURIs, "webOrigins": []any{"+"},
			// A tool's tokens carry its own roles only, so Keycloak puts no other tool in their
			// audience: one tool's token is no key to another (the catalog checks aud and azp).
			"fullScopeAllowed": false,
			"attributes":       map[string]any{"pkce.code.challenge.method": "S256"},
			"protocolMappers": []any{
				map[string]any{"name": "roles", "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-client-role-mapper", "config": map[string]any{
					"claim.name": "roles", "usermodel.clientRoleMapping.clientId": t.Name, "multivalued": "true",
					"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true"}},
				map[string]any{"name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper", "config": map[string]any{
					"claim.name": "groups", "full.path": "false", "id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true"}},
			},
		})
	}
	rep["clients"] = clients
	rep["roles"].(map[string]any)["client"] = clientRoles
	for _, g := range rep["groups"].([]any) {
		grp := g.(map[string]any)
		if m := groupRoles[grp["name"].(string)]; m != nil {
			cr, _ := grp["clientRoles"].(map[string]any)
			if cr == nil {
				cr = map[string]any{}
			}
			for c, roles := range m {
				cr[c] = roles
			}
			grp["clientRoles"] = cr
			realmRoles, _ := grp["realmRoles"].([]any)
			for _, r := range access[grp["name"].(string)] {
				realmRoles = append(realmRoles, r)
			}
			grp["realmRoles"] = realmRoles
		}
	}
}

// addIdentityProviders brokers each provider (signatures verified, profile synced at every login)
// and maps its groups claim or attribute values to kplane groups.
func addIdentityProviders(rep map[string]any, a Args) {
	var idps, mappers []any
	for _, p := range a.IdentityProviders {
		display := p.DisplayName
		if display == "" {
			display = p.Alias
		}
		var config map[string]any
		mapper := "oidc-advanced-group-idp-mapper"
		key := "claims"
		switch p.Type {
		case "oidc":
			issuer := strings.TrimSuffix(p.Issuer, "/")
			def := func(v, d string) string {
				if v == "" {
					return d
				}
				return v
			}
			config = map[string]any{"clientId": p.ClientID, "clientSecret": p.SecretPlaceholder(), "clientAuthMethod": "client_secret_post",
				"issuer": issuer, "authorizationUrl": def(p.AuthorizationURL, issuer+"/protocol/openid-connect/auth"),
				"tokenUrl": def(p.TokenURL, issuer+"/protocol/openid-connect/token"), "jwksUrl": def(p.JWKSURL, issuer+"/protocol/openid-connect/certs"),
				"useJwksUrl": "true", "validateSignature": "true", "pkceEnabled": "true", "pkceMethod": "S256", "defaultScope": "openid profile email",
				"syncMode": "FORCE"}
		case "saml":
			mapper, key = "saml-advanced-group-idp-mapper", "attributes"
			cert := strings.TrimSpace(p.SigningCertificate)
			cert = strings.TrimPrefix(cert, "-----BEGIN CERTIFICATE-----")
			cert = strings.TrimSpace(strings.TrimSuffix(cert, "-----END CERTIFICATE-----"))
			config = map[string]any{"singleSignOnServiceUrl": p.SingleSignOnURL, "idpEntityId": p.EntityID, "entityId": a.Issuer(),
				"nameIDPolicyFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", "principalType": "SUBJECT",
				"postBindingResponse": "true", "postBindingAuthnRequest": "true", "validateSignature": "true", "signingCertificate": strings.Join(strings.Fields(cert), ""),
				"wantAssertionsSigned": "true", "syncMode": "FORCE"}
		}
		idps = append(idps, map[string]any{"alias": p.Alias, "displayName": display, "providerId": p.Type, "enabled": true,
			"trustEmail": false, "storeToken": false, "firstBrokerLoginFlowAlias": "first broker login", "config": config})
		if p.Type == "saml" {
			attrs := map[string]string{"email": "email", "firstName": "firstName", "lastName": "lastName"}
			maps.Copy(attrs, p.Attributes)
			for _, user := range slices.Sorted(maps.Keys(attrs)) {
				mappers = append(mappers, map[string]any{"name": "attribute " + user, "identityProviderAlias": p.Alias, "identityProviderMapper": "saml-user-attribute-idp-mapper",
					"config": map[string]any{"attribute.name": attrs[user], "user.attribute": user, "syncMode": "FORCE"}})
			}
		}
		for _, value := range slices.Sorted(maps.Keys(p.Groups)) {
			claims, _ := json.Marshal([]map[string]string{{"key": "groups", "value": value}})
			mappers = append(mappers, map[string]any{"name": "group " + value, "identityProviderAlias": p.Alias, "identityProviderMapper": mapper,
				"config": map[string]any{key: string(claims), "are." + strings.TrimSuffix(key, "s") + ".values.regex": "false", "group": "/" + p.Groups[value], "syncMode": "FORCE"}})
		}
	}
	if len(idps) > 0 {
		rep["identityProviders"] = idps
		rep["identityProviderMappers"] = mappers
	}
}

// attribute maps an LDAP attribute to a Keycloak user attribute, read-only.
func attribute(name, ldapAttr, userAttr string, mandatory bool) map[string]any {
	list := func(v string) []any { return []any{v} }
	return map[string]any{"name": name, "providerId": "user-attribute-ldap-mapper", "config": map[string]any{
		"ldap.attribute": list(ldapAttr), "user.model.attribute": list(userAttr), "read.only": list("true"),
		"always.read.value.from.ldap": list("true"), "is.mandatory.in.ldap": list(fmt.Sprint(mandatory))}}
}

// loginFlows is the realm's login: an SSO cookie, a brokered provider or the password form,
// and then the administrators' second factor (login, forms and secondFactor name the flows;
// login is a top-level flow or a tool's subflow).
func loginFlows(login string, topLevel bool, forms, secondFactor string) []any {
	return []any{
		flow(login, topLevel, exec("auth-cookie", "ALTERNATIVE", 10), exec("identity-provider-redirector", "ALTERNATIVE", 15),
			subflow(forms, "ALTERNATIVE", 20)),
		flow(forms, false, exec("auth-username-password-form", "REQUIRED", 10), subflow(secondFactor, "CONDITIONAL", 20)),
		flow(secondFactor, false, withConfig(exec("conditional-user-role", "REQUIRED", 10), "kplane-admin-role"), exec("auth-otp-form", "REQUIRED", 20)),
	}
}

// ToolAccessRole is the realm role of a tool's users: the groups holding any of its roles.
func ToolAccessRole(tool string) string { return "kplane-tool-" + tool }

// toolFlows is a tool's browser flow: the realm's login, then access denied to whoever holds
// none of the tool's roles (so the business console is closed to administrators-only accounts
// and each tool to people without a role in it, by Keycloak itself).
func toolFlows(tool string) ([]any, map[string]any) {
	p := "kplane-" + tool
	flows := append([]any{flow(p+"-browser", true, subflow(p+"-login", "REQUIRED", 10), subflow(p+"-access", "CONDITIONAL", 20))},
		loginFlows(p+"-login", false, p+"-forms", p+"-second-factor")...)
	flows = append(flows, flow(p+"-access", false, withConfig(exec("conditional-user-role", "REQUIRED", 10), p+"-no-role"), exec("deny-access-authenticator", "REQUIRED", 20)))
	return flows, map[string]any{"alias": p + "-no-role", "config": map[string]any{"condUserRole": ToolAccessRole(tool), "negate": "true"}}
}

func flow(alias string, top bool, execs ...map[string]any) map[string]any {
	list := make([]any, len(execs))
	for i, e := range execs {
		list[i] = e
	}
	return map[string]any{"alias": alias, "providerId": "basic-flow", "topLevel": top, "builtIn": false, "authenticationExecutions": list}
}

func exec(authenticator, requirement string, priority int) map[string]any {
	return map[string]any{"authenticator": authenticator, "requirement": requirement, "priority": priority, "authenticatorFlow": false, "userSetupAllowed": false}
}

func subflow(alias, requirement string, priority int) map[string]any {
	return map[string]any{"flowAlias": alias, "requirement": requirement, "priority": priority, "authenticatorFlow": true, "userSetupAllowed": false}
}

func withConfig(e map[string]any, config string) map[string]any {
	e["authenticatorConfig"] = config
	return e
}

// AuthenticationConfiguration is the kube-apiserver's structured authentication configuration
// (--authentication-config; GA in 1.34) trusting the realm: audience the cluster client, username
// and flat groups with the prefix, and rules that refuse tokens without a username or groups
// claim and any identity posing as system:.
func AuthenticationConfiguration(args Args) (string, error) {
	a := args.withDefaults()
	issuer := map[string]any{"url": a.Issuer(), "audiences": []any{a.ClusterClientID}}
	if a.IssuerCA != "" {
		issuer["certificateAuthority"] = a.IssuerCA
	}
	cfg := map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AuthenticationConfiguration",
		"jwt": []any{map[string]any{
			"issuer": issuer,
			"claimValidationRules": []any{
				map[string]any{"expression": "has(claims.preferred_username) && claims.preferred_username != ''", "message": "the token has no preferred_username claim"},
				map[string]any{"expression": "has(claims.groups)", "message": "the token has no groups claim: the user is in no group, or the client lacks kplane's groups mapper"},
			},
			"claimMappings": map[string]any{
				"username": map[string]any{"claim": "preferred_username", "prefix": a.Prefix},
				"groups":   map[string]any{"claim": "groups", "prefix": a.Prefix},
				"uid":      map[string]any{"claim": "sub"},
			},
			"userValidationRules": []any{
				map[string]any{"expression": "!user.username.startsWith('system:')", "message": "usernames may not start with system:"},
				map[string]any{"expression": "user.groups.all(g, !g.startsWith('system:'))", "message": "groups may not start with system:"},
			},
		}},
	}
	out, err := yaml.Marshal(cfg)
	return string(out), err
}
