package policies

import (
	"strings"
	"testing"

	presource "github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/csisnap"
	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/tests/fixtures"
)

const ownDigest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type memberProvider struct{ pulumi.ProviderResourceState }

// TestKplaneObjectsPassKplanePolicies: everything kplane's components create (RBAC above all:
// ServiceAccounts, Roles and bindings of the hardened cluster's services, the restore drill, the
// etcd snapshots, the CSI snapshots, the realm sync, a fleet member's deployer) passes every
// mandatory policy of kplane's own pack.
func TestKplaneObjectsPassKplanePolicies(t *testing.T) {
	rec := &pack.Recorder{Outputs: func(args pulumi.MockResourceArgs) presource.PropertyMap { // the token the API server issues
		if args.TypeToken == "kubernetes:core/v1:Secret" && strings.HasSuffix(args.Name, "-token") {
			return presource.PropertyMap{"data": presource.NewObjectProperty(presource.PropertyMap{"token": presource.NewStringProperty("dG9rZW4=")})}
		}
		return nil
	}}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		if _, err := hardenedcluster.NewHardenedCluster(ctx, "cluster", &hardenedcluster.Args{
			PodSecurityVersion: "v1.37",
			Teams:              []hardenedcluster.Team{{Name: "shop", Namespaces: []string{"shop"}}},
			Services: []hardenedcluster.Service{
				{Name: "ledger", Namespace: "shop", Rules: []hardenedcluster.Rule{{Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}},
				{Name: "reporter", Namespace: "shop", ClusterRules: []hardenedcluster.Rule{{Resources: []string{"namespaces"}, Verbs: []string{"list"}}}},
			},
			NodeChecks: hardenedcluster.NodeCheckArgs{Image: "registry.example.com/kplane-nodecheck" + ownDigest, Pools: []hardenedcluster.NodePool{{Name: "general", Nodes: 3}}},
		}); err != nil {
			return err
		}
		if _, err := backup.NewRestoreDrill(ctx, "drill", &backup.RestoreDrillArgs{Image: "registry.example.com/kplane-backup" + ownDigest,
			Namespaces: []string{"shop"}, Bucket: "backups", Prefix: "velero/prod", CredentialsSecret: "drill-credentials",
			Resources: []string{"shop.example.com/widgets"}}); err != nil {
			return err
		}
		if _, err := backup.NewEtcdSnapshots(ctx, "etcd", &backup.EtcdSnapshotsArgs{Image: "registry.example.com/kplane-etcd-snapshot" + ownDigest,
			Bucket: "backups", CredentialsSecret: "etcd-backup"}); err != nil {
			return err
		}
		if _, err := backup.NewCSISnapshots(ctx, "csi", &backup.CSISnapshotsArgs{Image: "registry.example.com/kplane-backup" + ownDigest, Class: &backup.SnapshotClass{Name: "csi", Driver: "ebs.csi.aws.com"},
			Policies: []backup.SnapshotPolicy{{Policy: csisnap.Policy{Name: "db", Namespace: "shop", Keep: 7}, Schedule: "0 3 * * *"}}}); err != nil {
			return err
		}
		if _, err := identity.NewRealm(ctx, "realm", &identity.Args{KeycloakURL: "https://sso.example.com",
			Teams: []identity.Team{{Name: "shop", Namespaces: []string{"shop"}}},
			Sync:  &identity.Sync{Image: "registry.example.com/kplane-realm-sync" + ownDigest, AdminSecret: "keycloak-admin"}}); err != nil {
			return err
		}
		var member, mgmt memberProvider
		if err := ctx.RegisterResource("pulumi:providers:kubernetes", "member", nil, &member); err != nil {
			return err
		}
		if err := ctx.RegisterResource("pulumi:providers:kubernetes", "mgmt", nil, &mgmt); err != nil {
			return err
		}
		_, err := fleetmember.NewMember(ctx, "seoul", &fleetmember.MemberArgs{Name: "seoul", Environment: "prod", Server: "https://10.0.0.1:6443",
			CAData: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", Member: &member, Management: &mgmt,
			Rendered: &fleetmember.Rendered{Environment: "prod", Cluster: "seoul", // its credentials from a render's kinds
				Platform: []fleetmember.Kind{{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespaced: true},
					{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole", Resource: "clusterroles"}},
				Policies: []fleetmember.Kind{{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicy", Resource: "validatingadmissionpolicies"}}}})
		return err
	}, pulumi.WithMocks("kplane", "prod", rec)))

	// The one namespace the platform exempts from admission: the etcd snapshots run as root on
	// the control-plane node's network to read etcd's client certificate from the host
	// (docs/security.md); the composed platform exempts it the same way.
	p, err := PackFor(&hardenedcluster.Args{Admission: hardenedcluster.AdmissionArgs{ExemptNamespaces: []string{backup.EtcdSnapshotNamespace}}})
	require.NoError(t, err)
	kinds := map[string]int{}
	var failures []string
	for _, r := range rec.Resources {
		kinds[r.Type]++
		for _, v := range p.Evaluate(r, nil) {
			if v.Level == pack.Mandatory {
				failures = append(failures, r.Type+" "+r.Name+": "+v.Policy.Name+": "+v.Message)
			}
		}
	}
	for _, v := range p.EvaluateStack(rec.Resources, nil) {
		if v.Level == pack.Mandatory {
			failures = append(failures, v.URN+": "+v.Policy.Name+": "+v.Message)
		}
	}
	assert.Empty(t, failures, "kplane's own objects fail its mandatory policies:\n%s", strings.Join(failures, "\n"))
	for _, kind := range []string{"kubernetes:rbac.authorization.k8s.io/v1:Role", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
		"kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "kubernetes:batch/v1:CronJob"} {
		assert.Positive(t, kinds[kind], "the components made %s", kind)
	}
	t.Logf("%d resources of %d types judged", len(rec.Resources), len(kinds))
}

// TestPackJudgesByTheStacksArguments: served to a stack whose config holds kplane:security, the
// pack judges by those arguments (its registries, its exceptions), as the cluster will.
func TestPackJudgesByTheStacksArguments(t *testing.T) {
	p, err := Pack()
	require.NoError(t, err)
	require.NotNil(t, p.ForStack)
	spec := rules.GoodPodSpec()
	rules.Container(spec)["image"] = "docker.io/library/nginx" + rules.Digest
	obj, _, _ := fixtures.Workload("Deployment", "apps", "web", spec)
	r := pack.Resource{Type: "kubernetes:apps/v1:Deployment", Name: "web", Props: obj}
	judged := func(p *pack.Pack) []string {
		var names []string
		for _, v := range p.Evaluate(r, nil) {
			names = append(names, v.Policy.Name)
		}
		return names
	}
	assert.NotContains(t, judged(p), rules.AllowedRegistries, "the defaults allow every registry")

	stack, err := p.ForStack(map[string]string{SecurityConfig: `{"teams":[{"name":"apps","namespaces":["apps"]}],"admission":{"allowedRegistries":["registry.example.com"]}}`})
	require.NoError(t, err)
	assert.Contains(t, judged(stack), rules.AllowedRegistries)

	_, err = p.ForStack(map[string]string{SecurityConfig: `{"admision":{}}`})
	require.ErrorContains(t, err, `kplane:security.admision: unknown key; known keys: admission,`)
	other, err := p.ForStack(map[string]string{"kplane:environment": "dev"})
	require.NoError(t, err)
	assert.NotContains(t, judged(other), rules.AllowedRegistries, "no kplane:security: the defaults")
}
