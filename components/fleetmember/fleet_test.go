package fleetmember

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies/pack"
)

type provider struct{ pulumi.ProviderResourceState }

func sample(ctx *pulumi.Context) MemberArgs {
	var member, mgmt provider
	if ctx != nil {
		_ = ctx.RegisterResource("pulumi:providers:kubernetes", "member", nil, &member)
		_ = ctx.RegisterResource("pulumi:providers:kubernetes", "mgmt", nil, &mgmt)
	}
	return MemberArgs{Name: "seoul", Environment: "prod", Server: "https://10.0.0.1:6443", CAData: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		Labels: map[string]string{"region": "kr-central"}, Rendered: sampleRender("seoul"), Rancher: &Rancher{}, Member: &member, Management: &mgmt}
}

// sampleRender is a member's render manifest: a few platform kinds and the admission policies'.
func sampleRender(cluster string) *Rendered {
	return &Rendered{Environment: "prod", Cluster: cluster, Objects: 7, Namespaces: []string{"istio-system", "payments"},
		Platform: []Kind{{Version: "v1", Kind: "Namespace", Resource: "namespaces"}, {Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespaced: true},
			{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole", Resource: "clusterroles"},
			{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication", Resource: "peerauthentications", Namespaced: true}},
		Policies: []Kind{{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicy", Resource: "validatingadmissionpolicies"},
			{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicyBinding", Resource: "validatingadmissionpolicybindings"}}}
}

func TestMemberValidate(t *testing.T) {
	good := sample(nil)
	good.Member, good.Management = &provider{}, &provider{}
	require.NoError(t, good.Validate())
	for _, c := range []struct {
		mutate func(*MemberArgs)
		want   string
	}{
		{func(a *MemberArgs) { a.Name = "Seoul" }, `name "Seoul"`},
		{func(a *MemberArgs) { a.Server = "10.0.0.1:6443" }, "server"},
		{func(a *MemberArgs) { a.CAData = "" }, "caData"},
		{func(a *MemberArgs) { a.Labels = map[string]string{wellknown.RolloutLabel: "enabled"} }, `labels[kplane.io/rollout]: not a label key of yours`},
		{func(a *MemberArgs) { a.Rendered = sampleRender("busan") }, "rendered: rendered for prod/busan, not prod/seoul"},
		{func(a *MemberArgs) { a.Platform, a.Rendered = pullPlatform(), nil }, "rendered: required; with a platform"},
		{func(a *MemberArgs) { a.Management = nil }, "member and management providers are both required"},
		{func(a *MemberArgs) { a.Mode = "agent" }, `mode "agent": use "push" or "pull"`},
		{func(a *MemberArgs) { a.Rancher, a.RancherAgent = nil, pulumi.String("kind: Namespace") }, "rancher: required; with rancherAgent"},
		{func(a *MemberArgs) { a.Mode = Pull }, "platform: required; with mode pull"},
		{func(a *MemberArgs) { a.Mode, a.Platform = Pull, &PlatformArgs{Environment: "prod"} }, "platform.repoURL"},
		{func(a *MemberArgs) { a.Mode, a.Platform, a.Environment = Pull, pullPlatform(), "stage" }, `the member's environment is "stage"`},
	} {
		a := good
		c.mutate(&a)
		assert.ErrorContains(t, a.Validate(), c.want)
	}
}

func TestMemberGraph(t *testing.T) {
	// The API server's token controller fills the token Secret in.
	m := &pack.Recorder{Outputs: func(args pulumi.MockResourceArgs) resource.PropertyMap {
		if args.TypeToken == "kubernetes:core/v1:Secret" && strings.HasSuffix(args.Name, "-token") {
			return resource.PropertyMap{"data": resource.NewObjectProperty(resource.PropertyMap{"token": resource.NewStringProperty("dG9rZW4=")})}
		}
		return nil
	}}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := sample(ctx)
		a.RancherAgent = pulumi.String("apiVersion: v1\nkind: Namespace\nmetadata: {name: cattle-system}\n")
		_, err := NewMember(ctx, "seoul", &a)
		return err
	}, pulumi.WithMocks("kplane", "prod", m)))
	agent := m.Inputs()["kubernetes:yaml/v2:ConfigGroup seoul-rancher-agent"]["yaml"]
	assert.True(t, agent.IsSecret(), "Rancher's registration manifest (its token) is a Pulumi secret")
	js := func(key string) string { return inputJSON(t, m, key) }
	token := js("kubernetes:core/v1:Secret seoul-token")
	assert.Contains(t, token, `"type":"kubernetes.io/service-account-token"`)
	assert.Contains(t, token, `"pulumi.com/waitFor":"jsonpath={.data.token}"`)
	// The entry reads the render's kinds, and impersonates the two deployers in kplane's namespace.
	reader := js("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole seoul-reader")
	assert.NotContains(t, reader, `"*"`, "no wildcard")
	assert.Contains(t, reader, `{"apiGroups":["apps"],"resources":["deployments"],"verbs":["get","list","watch"]}`)
	assert.Contains(t, reader, `{"apiGroups":["admissionregistration.k8s.io"],"resources":["validatingadmissionpolicies","validatingadmissionpolicybindings"],"verbs":["get","list","watch"]}`)
	assert.NotContains(t, reader, "secrets", "the render holds no Secret: Argo CD may not read any")
	assert.Contains(t, js("kubernetes:rbac.authorization.k8s.io/v1:Role seoul-impersonate"),
		`"namespace":"kplane-fleet"},"rules":[{"apiGroups":[""],"resourceNames":["kplane-platform-deployer","kplane-policy-deployer"],"resources":["serviceaccounts"],"verbs":["impersonate"]}]`)
	// The platform's deployer: its kinds, and RBAC's escalate/bind (it installs the platform's
	// roles); never the admission policies. The policies' deployer: those only.
	platform := js("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole seoul-kplane-platform-deployer")
	assert.Contains(t, platform, `{"apiGroups":["security.istio.io"],"resources":["peerauthentications"],"verbs":["get","list","watch","create","update","patch","delete"]}`)
	assert.Contains(t, platform, `{"apiGroups":["rbac.authorization.k8s.io"],"resources":["clusterroles","roles"],"verbs":["bind","escalate"]}`)
	assert.NotContains(t, platform, "admissionregistration")
	policies := js("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole seoul-kplane-policy-deployer")
	assert.Equal(t, 1, strings.Count(policies, `"apiGroups"`), policies)
	assert.Contains(t, policies, `"resources":["validatingadmissionpolicies","validatingadmissionpolicybindings"]`)
	assert.Contains(t, js("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding seoul-kplane-policy-deployer"), `"subjects":[{"kind":"ServiceAccount","name":"kplane-policy-deployer","namespace":"kplane-fleet"}]`)
	entry := js("kubernetes:core/v1:Secret seoul-argocd-cluster")
	for _, want := range []string{`"argocd.argoproj.io/secret-type":"cluster"`, `"kplane.io/environment":"prod"`, `"region":"kr-central"`} {
		assert.Contains(t, entry, want)
	}
	data := m.Inputs()["kubernetes:core/v1:Secret seoul-argocd-cluster"]["stringData"]
	require.True(t, data.IsSecret(), "the entry's data (with the token) is a Pulumi secret")
	fields := data.SecretValue().Element.ObjectValue()
	assert.NotContains(t, fields, resource.PropertyKey("namespaces"), "every namespace: what it may touch is the roles'")
	assert.Equal(t, "true", fields["clusterResources"].StringValue())
	assert.JSONEq(t, `{"bearerToken":"token","tlsClientConfig":{"insecure":false,"caData":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="}}`,
		fields["config"].StringValue())
	assert.NotContains(t, entry, wellknown.RolloutLabel, "the rollout label is the wave runner's")
	assert.Contains(t, js("kubernetes:provisioning.cattle.io/v1:Cluster seoul-rancher"), `"namespace":"fleet-default"`)
}

// inputJSON is the inputs of the recorded resource key ("type name") as JSON.
func inputJSON(t *testing.T, m *pack.Recorder, key string) string {
	t.Helper()
	v, ok := m.Inputs()[key]
	require.True(t, ok, key)
	b, err := json.Marshal(v.Mappable())
	require.NoError(t, err)
	return string(b)
}

func pullPlatform() *PlatformArgs {
	return &PlatformArgs{Environment: "prod", RepoURL: "https://git.example.com/platform.git", Revision: "v1.4.0"}
}

// TestMemberPull: a pull member's entry, AppProject and Applications all go to the member, for
// its own Argo CD; nothing to the management cluster; automated sync is left to the wave runner.
func TestMemberPull(t *testing.T) {
	var mu sync.Mutex // resources register concurrently
	providers, deps := map[string]string{}, map[string][]string{}
	m := &pack.Recorder{Outputs: func(args pulumi.MockResourceArgs) resource.PropertyMap {
		mu.Lock()
		providers[args.TypeToken+" "+args.Name] = args.Provider
		deps[args.Name] = args.RegisterRPC.GetDependencies()
		mu.Unlock()
		if args.TypeToken == "kubernetes:core/v1:Secret" && strings.HasSuffix(args.Name, "-token") {
			return resource.PropertyMap{"data": resource.NewObjectProperty(resource.PropertyMap{"token": resource.NewStringProperty("dG9rZW4=")})}
		}
		return nil
	}}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := sample(ctx)
		a.Mode, a.Platform, a.Server, a.Rancher, a.Management = Pull, pullPlatform(), "", nil, nil
		_, err := NewMember(ctx, "seoul", &a)
		return err
	}, pulumi.WithMocks("kplane", "prod", m)))
	for key, p := range providers {
		if !strings.HasPrefix(key, "kubernetes:") {
			continue
		}
		assert.Contains(t, p, "::member::", "%s: on the member", key)
	}
	js := func(key string) string { return inputJSON(t, m, key) }
	data := m.Inputs()["kubernetes:core/v1:Secret seoul-argocd-cluster"]["stringData"]
	require.True(t, data.IsSecret())
	assert.Equal(t, InClusterServer, data.SecretValue().Element.ObjectValue()["server"].StringValue())
	platform := js("kubernetes:argoproj.io/v1alpha1:Application seoul-kplane-platform-prod-seoul")
	for _, want := range []string{`"namespace":"argocd"`, `"server":"https://kubernetes.default.svc"`, `"path":"rendered/prod/seoul/platform"`,
		`"directory":{"recurse":true}`, `"targetRevision":"v1.4.0"`, `"kplane.io/fleet-member":"seoul"`, `"project":"kplane-platform-prod"`} {
		assert.Contains(t, platform, want)
	}
	assert.NotContains(t, platform, "automated", "the wave runner enables it")
	assert.Contains(t, js("kubernetes:argoproj.io/v1alpha1:Application seoul-kplane-policies-prod-seoul"), `"path":"rendered/prod/seoul/policies"`)
	assert.Contains(t, js("kubernetes:argoproj.io/v1alpha1:AppProject seoul-kplane-platform-prod"), `"destinations":[{"namespace":"*","server":"https://kubernetes.default.svc"}]`)
	// Created after, and deleted before, what they sync with.
	after := strings.Join(deps["seoul-kplane-platform-prod-seoul"], " ")
	for _, want := range []string{"::seoul-argocd-cluster", "::seoul-reader", "::seoul-impersonate", "::seoul-kplane-platform-deployer", "::seoul-kplane-platform-prod"} {
		assert.Contains(t, after, want)
	}
}

// TestPlatformObjects: the ApplicationSets sync each enabled member's rendered folders; the two
// AppProjects allow the renders' kinds, the policies' nothing namespaced, each impersonating its
// deployer.
func TestPlatformObjects(t *testing.T) {
	a := PlatformArgs{Environment: "prod", RepoURL: "https://git.example.com/platform.git", Revision: "v1.4.0", Rendered: []*Rendered{sampleRender("seoul"), sampleRender("busan")}}
	require.NoError(t, a.Validate())
	objs := a.Objects()
	require.Len(t, objs, 4)
	raw, err := json.Marshal(objs)
	require.NoError(t, err)
	for _, want := range []string{`"kplane.io/rollout":"enabled"`, `"path":"rendered/prod/{{.name}}/platform"`, `"path":"rendered/prod/{{.name}}/policies"`,
		`"refresh":true`, `"syncOptions":["ServerSideApply=true","SkipDryRunOnMissingResource=true"]`} {
		assert.Contains(t, string(raw), want)
	}
	project := func(i int) string {
		b, err := json.Marshal(objs[i]["spec"])
		require.NoError(t, err)
		return string(b)
	}
	assert.Contains(t, project(0), `"clusterResourceWhitelist":[{"group":"","kind":"Namespace"},{"group":"rbac.authorization.k8s.io","kind":"ClusterRole"}]`)
	assert.Contains(t, project(0), `"namespaceResourceWhitelist":[{"group":"apps","kind":"Deployment"},{"group":"security.istio.io","kind":"PeerAuthentication"}]`)
	assert.Contains(t, project(0), `"defaultServiceAccount":"kplane-fleet:kplane-platform-deployer"`)
	assert.Contains(t, project(1), `"clusterResourceWhitelist":[{"group":"admissionregistration.k8s.io","kind":"ValidatingAdmissionPolicy"},{"group":"admissionregistration.k8s.io","kind":"ValidatingAdmissionPolicyBinding"}]`)
	assert.Contains(t, project(1), `"namespaceResourceBlacklist":[{"group":"*","kind":"*"}]`)
	assert.Contains(t, project(1), `"defaultServiceAccount":"kplane-fleet:kplane-policy-deployer"`)
	a.Revision, a.Path = "HEAD", "../elsewhere"
	assert.ErrorContains(t, a.Validate(), "pin a tag or commit")
	assert.ErrorContains(t, a.Validate(), `path "../elsewhere": a folder inside the repository`)
}

// TestPolicyKind: the admission policies go to policies/, nothing else does.
func TestPolicyKind(t *testing.T) {
	for _, k := range [][2]string{{"admissionregistration.k8s.io", "ValidatingAdmissionPolicy"}, {"admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"},
		{"templates.gatekeeper.sh", "ConstraintTemplate"}, {"constraints.gatekeeper.sh", "K8sAllowedRepos"}, {"policy.sigstore.dev", "ClusterImagePolicy"}} {
		assert.True(t, PolicyKind(k[0], k[1]), k)
	}
	for _, k := range [][2]string{{"admissionregistration.k8s.io", "ValidatingWebhookConfiguration"}, {"admissionregistration.k8s.io", "MutatingWebhookConfiguration"},
		{"", "ConfigMap"}, {"security.istio.io", "AuthorizationPolicy"}} {
		assert.False(t, PolicyKind(k[0], k[1]), k)
	}
}

// TestLogin: Argo CD's login through the realm: its oidc.config (PKCE, the realm's CA), and a
// policy that grants nothing by default and maps the tool's roles from the roles claim.
func TestLogin(t *testing.T) {
	l := Login{Issuer: "https://sso.example.com/realms/kplane", URL: "https://argocd.example.com", RootCA: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}
	require.NoError(t, l.Validate())
	cm, rbac, err := l.ArgoCDSettings()
	require.NoError(t, err)
	assert.Equal(t, "https://argocd.example.com", cm["url"])
	for _, want := range []string{"issuer: https://sso.example.com/realms/kplane\n", "clientID: argocd\n", "enablePKCEAuthentication: true\n", "rootCA: |\n"} {
		assert.Contains(t, cm["oidc.config"], want)
	}
	assert.NotContains(t, cm["oidc.config"], "clientSecret", "a public client: nothing secret in a ConfigMap")
	assert.Equal(t, "", rbac["policy.default"], "no role unless the realm gives one")
	assert.Equal(t, "[roles]", rbac["scopes"])
	for _, want := range []string{"g, admin, role:admin\n", "g, edit, role:kplane-operator\n", "g, view, role:readonly\n", "p, role:kplane-operator, applications, sync, */*, allow\n"} {
		assert.Contains(t, rbac["policy.csv"], want)
	}
	bad := Login{Issuer: "http://sso.example.com/realms/kplane", URL: "argocd.example.com", Roles: map[string]string{"admin": "admin"}}
	err = bad.Validate()
	for _, want := range []string{`issuer "http://sso.example.com/realms/kplane": the realm's issuer`, `url "argocd.example.com": Argo CD's external https:// URL`, `roles[admin] "admin": an Argo CD role`} {
		assert.ErrorContains(t, err, want)
	}
}
