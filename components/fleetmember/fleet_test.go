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
		Labels: map[string]string{"region": "kr-central", "policy-mode": "audit"}, Values: map[string]any{"replicas": 3},
		Namespaces: []string{"kplane-system", "kplane-addons"}, Rancher: &Rancher{}, Member: &member, Management: &mgmt}
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
		{func(a *MemberArgs) { a.Namespaces = []string{"kube-system"} }, `namespaces[0] "kube-system": a namespace of the platform's`},
		{func(a *MemberArgs) { a.Management = nil }, "member and management providers are both required"},
		{func(a *MemberArgs) { a.Mode = "agent" }, `mode "agent": use "push" or "pull"`},
		{func(a *MemberArgs) { a.Rancher, a.RancherAgent = nil, pulumi.String("kind: Namespace") }, "rancher: required; with rancherAgent"},
		{func(a *MemberArgs) { a.Mode = Pull }, "platform: required; with mode pull"},
		{func(a *MemberArgs) { a.Mode, a.Platform, a.Namespaces = Pull, &PlatformArgs{Environment: "prod"}, nil }, "platform.repoURL"},
		{func(a *MemberArgs) {
			a.Mode, a.Platform, a.Namespaces = Pull, pullPlatform(), []string{"kplane-addons"}
		}, "add the platform's namespace kplane-system"},
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
	role := js("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole seoul-deployer")
	assert.NotContains(t, role, `"*"`, "no wildcard")
	assert.NotContains(t, role, "clusterroles", "nothing cluster-wide")
	assert.Contains(t, js("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding seoul-deployer-kplane-addons"), `"kind":"ClusterRole","name":"kplane-fleet-deployer"`)
	entry := js("kubernetes:core/v1:Secret seoul-argocd-cluster")
	for _, want := range []string{`"argocd.argoproj.io/secret-type":"cluster"`, `"kplane.io/environment":"prod"`, `"region":"kr-central"`,
		`"kplane.io/values":"replicas: 3\n"`} {
		assert.Contains(t, entry, want)
	}
	data := m.Inputs()["kubernetes:core/v1:Secret seoul-argocd-cluster"]["stringData"]
	require.True(t, data.IsSecret(), "the entry's data (with the token) is a Pulumi secret")
	fields := data.SecretValue().Element.ObjectValue()
	assert.Equal(t, "kplane-system,kplane-addons", fields["namespaces"].StringValue())
	assert.Equal(t, "false", fields["clusterResources"].StringValue())
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
	return &PlatformArgs{Environment: "prod", RepoURL: "https://git.example.com/platform.git", Revision: "v1.4.0", ChartPath: "charts/platform", PolicyChartPath: "charts/policies"}
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
	for _, want := range []string{`"namespace":"argocd"`, `"server":"https://kubernetes.default.svc"`, `"values":"replicas: 3\n"`,
		`"valueFiles":["values/common.yaml","values/prod.yaml"]`, `"targetRevision":"v1.4.0"`, `"kplane.io/fleet-member":"seoul"`} {
		assert.Contains(t, platform, want)
	}
	assert.NotContains(t, platform, "automated", "the wave runner enables it")
	assert.Contains(t, js("kubernetes:argoproj.io/v1alpha1:Application seoul-kplane-policies-prod-seoul"), `{"name":"mode","value":"audit"}`)
	assert.Contains(t, js("kubernetes:argoproj.io/v1alpha1:AppProject seoul-kplane-prod"), `"destinations":[{"namespace":"kplane-system","server":"https://kubernetes.default.svc"}]`)
	// Created after, and deleted before, what they sync with.
	after := strings.Join(deps["seoul-kplane-platform-prod-seoul"], " ")
	for _, want := range []string{"::seoul-argocd-cluster", "::seoul-deployer-kplane-system", "::seoul-deployer-kplane-addons", "::seoul-kplane-prod"} {
		assert.Contains(t, after, want)
	}
}

func TestPlatformObjects(t *testing.T) {
	a := PlatformArgs{Environment: "prod", RepoURL: "https://git.example.com/platform.git", Revision: "v1.4.0", ChartPath: "charts/platform", PolicyChartPath: "charts/policies"}
	require.NoError(t, a.Validate())
	objs := a.Objects()
	require.Len(t, objs, 3)
	raw, err := json.Marshal(objs)
	require.NoError(t, err)
	for _, want := range []string{`"kplane.io/rollout":"enabled"`, `"valueFiles":["values/common.yaml","values/prod.yaml"]`,
		`"values":"{{ index .metadata.annotations \"kplane.io/values\" }}"`, `"clusterResourceWhitelist":[]`, `"refresh":true`, `"name":"mode","value":"{{ index .metadata.labels \"policy-mode\" | default \"enforce\" }}"`} {
		assert.Contains(t, string(raw), want)
	}
	a.Revision = "HEAD"
	assert.ErrorContains(t, a.Validate(), "pin a tag or commit")
}
