package hardenedcluster

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

const checkImage = "registry.example.com/kplane-nodecheck@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestNodeChecksGraph(t *testing.T) {
	rec, err := run(t, &Args{NodeChecks: NodeCheckArgs{Image: checkImage, Pools: []NodePool{
		{Name: "control-plane", Selector: map[string]string{"node-role.kubernetes.io/control-plane": ""}, Nodes: 3},
		{Name: "general", Nodes: 5},
	}}})
	require.NoError(t, err)
	jobs := rec.ofType("kubernetes:batch/v1:CronJob")
	require.Len(t, jobs, 2, "one CronJob per pool")
	cp := byName(jobs, "node-check-control-plane").Inputs["spec"].ObjectValue()
	assert.Equal(t, "17 3 * * *", cp["schedule"].StringValue())
	job := cp["jobTemplate"].ObjectValue()["spec"].ObjectValue()
	assert.Equal(t, 3.0, job["parallelism"].NumberValue(), "one pod per node of the pool")
	assert.Equal(t, 3.0, job["completions"].NumberValue())
	pod := job["template"].ObjectValue()["spec"].ObjectValue()
	assert.Equal(t, "", pod["nodeSelector"].ObjectValue()["node-role.kubernetes.io/control-plane"].StringValue())
	assert.NotEmpty(t, pod["affinity"].ObjectValue()["podAntiAffinity"].ObjectValue(), "at most one check per node")
	for _, v := range pod["volumes"].ArrayValue() {
		assert.Contains(t, []string{"/etc", "/var/lib"}, v.ObjectValue()["hostPath"].ObjectValue()["path"].StringValue())
	}
	c := pod["containers"].ArrayValue()[0].ObjectValue()
	for _, m := range c["volumeMounts"].ArrayValue() {
		assert.True(t, m.ObjectValue()["readOnly"].BoolValue(), "the host is mounted read-only")
	}
	sc := c["securityContext"].ObjectValue()
	assert.True(t, sc["readOnlyRootFilesystem"].BoolValue())
	assert.False(t, sc["allowPrivilegeEscalation"].BoolValue())
	assert.Equal(t, []string{"ALL"}, strs(sc["capabilities"].ObjectValue()["drop"]))

	role := byName(rec.ofType("kubernetes:rbac.authorization.k8s.io/v1:Role"), "kplane-node-check")
	rule := role.Inputs["rules"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, []string{"configmaps"}, strs(rule["resources"]))
	assert.Equal(t, []string{"create", "update"}, strs(rule["verbs"]), "the check can only write its reports")

	ns := byName(rec.ofType("kubernetes:core/v1:Namespace"), NodeCheckNamespace)
	assert.Equal(t, "privileged", ns.Inputs["metadata"].ObjectValue()["labels"].ObjectValue()["pod-security.kubernetes.io/enforce"].StringValue())
	binding := byName(rec.ofType(bindingType), "kplane-host-path")
	selector := binding.Inputs["spec"].ObjectValue()["matchResources"].ObjectValue()["namespaceSelector"].ObjectValue()
	assert.Contains(t, strs(selector["matchExpressions"].ArrayValue()[0].ObjectValue()["values"]), NodeCheckNamespace, "the check's namespace is exempt from the admission baseline")

	none, err := run(t, &Args{})
	require.NoError(t, err)
	assert.Empty(t, none.ofType("kubernetes:batch/v1:CronJob"), "no image, no node checks")
}

func TestNodeChecksValidate(t *testing.T) {
	pool := []NodePool{{Name: "general", Nodes: 2}}
	for name, tc := range map[string]struct {
		nc   NodeCheckArgs
		want string
	}{
		"pools without image": {NodeCheckArgs{Pools: pool}, "nodeChecks.image: required; with pools"},
		"tag":                 {NodeCheckArgs{Image: "registry.example.com/nodecheck:1.0", Pools: pool}, `nodeChecks.image "registry.example.com/nodecheck:1.0": pin it by digest`},
		"no pools":            {NodeCheckArgs{Image: checkImage}, "nodeChecks.pools: required; list the node pools"},
		"pool size":           {NodeCheckArgs{Image: checkImage, Pools: []NodePool{{Name: "general"}}}, "nodeChecks.pools[0].nodes 0"},
		"duplicate pool":      {NodeCheckArgs{Image: checkImage, Pools: append(pool, pool...)}, `nodeChecks.pools[1].name "general"`},
		"schedule":            {NodeCheckArgs{Image: checkImage, Pools: pool, Schedule: "daily"}, `nodeChecks.schedule "daily"`},
		"valid":               {NodeCheckArgs{Image: checkImage, Pools: pool, Schedule: "0 2 * * 0"}, ""},
	} {
		t.Run(name, func(t *testing.T) { expectValidation(t, &Args{NodeChecks: tc.nc}, tc.want) })
	}
}

// TestKubeletConfiguration: the hardened kubelet configuration is a valid KubeletConfiguration,
// field for field (strict decoding into the kubelet's own v1beta1 types).
func TestKubeletConfiguration(t *testing.T) {
	var cfg kubeletv1beta1.KubeletConfiguration
	require.NoError(t, yaml.UnmarshalStrict([]byte(KubeletConfiguration()), &cfg))
	assert.False(t, *cfg.Authentication.Anonymous.Enabled)
	assert.Equal(t, int32(0), cfg.ReadOnlyPort)
	assert.True(t, *cfg.SeccompDefault)
}
