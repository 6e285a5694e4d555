package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/testbed"
)

// TestKubernetesPolicyPack: real `pulumi preview --policy-pack <executable>` with kplane's
// Kubernetes pack: a compliant Deployment previews clean; a privileged one fails the preview with
// the policy's message (the same the API server would give at apply); a pack configuration can
// make the policy advisory, and a misspelt policy in it is an error, never a silent pass.
func TestKubernetesPolicyPack(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	ctx := context.Background()
	packBin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-kubernetes")

	privileged := false
	program := func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		ns, err := corev1.NewNamespace(ctx, "pp", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("pp-apps"),
			Labels: pulumi.StringMap{"pod-security.kubernetes.io/enforce": pulumi.String("restricted"), "pod-security.kubernetes.io/enforce-version": pulumi.String("v1.37")}}},
			pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		sc := &corev1.SecurityContextArgs{AllowPrivilegeEscalation: pulumi.Bool(false), ReadOnlyRootFilesystem: pulumi.Bool(true),
			Capabilities: &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})}}
		if privileged {
			sc = &corev1.SecurityContextArgs{Privileged: pulumi.Bool(true), ReadOnlyRootFilesystem: pulumi.Bool(true),
				Capabilities: &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})}}
		}
		labels := pulumi.StringMap{"app": pulumi.String("web")}
		_, err = appsv1.NewDeployment(ctx, "web", &appsv1.DeploymentArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("web"), Namespace: ns.Metadata.Name()},
			Spec: &appsv1.DeploymentSpecArgs{
				Selector: &metav1.LabelSelectorArgs{MatchLabels: labels},
				Template: &corev1.PodTemplateSpecArgs{
					Metadata: &metav1.ObjectMetaArgs{Labels: labels},
					Spec: &corev1.PodSpecArgs{
						SecurityContext: &corev1.PodSecurityContextArgs{RunAsNonRoot: pulumi.Bool(true), RunAsUser: pulumi.Int(10001),
							SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")}},
						Containers: corev1.ContainerArray{corev1.ContainerArgs{Name: pulumi.String("app"),
							Image: pulumi.String("registry.example.com/web" + rules.Digest), SecurityContext: sc}},
					},
				},
			},
		}, pulumi.Provider(k8s))
		return err
	}
	s := openStack(t, "policypack", program, nil, t.TempDir())

	_, err := s.Preview(ctx, optpreview.PolicyPacks(packBin))
	require.NoError(t, err, "the compliant stack previews clean")

	privileged = true
	res, err := s.Preview(ctx, optpreview.PolicyPacks(packBin))
	require.Error(t, err, "a mandatory violation fails the preview")
	assert.Contains(t, res.StdOut+err.Error(), "kplane-no-privileged: container app: securityContext.privileged must be false (CIS 5.2.2)")
	assert.Contains(t, res.StdOut+err.Error(), "mandatory")

	// (A privileged container cannot also forbid privilege escalation: both policies answer.)
	config := filepath.Join(t.TempDir(), "advisory.json")
	require.NoError(t, os.WriteFile(config, []byte(`{"kplane-no-privileged": "advisory", "kplane-privilege-escalation": "advisory"}`), 0o600))
	res, err = s.Preview(ctx, optpreview.PolicyPacks(packBin), optpreview.PolicyPackConfigs(config))
	require.NoError(t, err, "an advisory violation is reported, not blocking")
	assert.Contains(t, res.StdOut, "kplane-no-privileged")
	assert.Contains(t, res.StdOut, "advisory")

	require.NoError(t, os.WriteFile(config, []byte(`{"kplane-no-priviledged": "disabled"}`), 0o600))
	_, err = s.Preview(ctx, optpreview.PolicyPacks(packBin), optpreview.PolicyPackConfigs(config))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `no policy "kplane-no-priviledged"`, "a misspelt policy in the configuration is an error")

	// A malformed configuration is an error, never a silent pass.
	for bad, want := range map[string]string{`{"kplane-no-privileged": "strict"}`: `"strict" is not a valid enforcement level`, `{"kplane-no-privileged": `: "unexpected end of JSON input"} {
		require.NoError(t, os.WriteFile(config, []byte(bad), 0o600))
		_, err = s.Preview(ctx, optpreview.PolicyPacks(packBin), optpreview.PolicyPackConfigs(config))
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), want)
	}

	// (The composed environments/dev previews clean under the pack: TestPlatformComposed.)
}

// TestPreviewReport runs the PR check as `make preview` does (`kplane preview` with the packs and
// a report): environments/dev passes and its report shows every control; an environment that
// loosens admission to audit fails with exactly that violation, in the Korean report too.
func TestPreviewReport(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	require.NoError(t, testbed.InstallVelero(context.Background(), c), "dev's backup schedules need Velero's CRDs")
	packBin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-kubernetes")
	kplane := buildCommand(t, "github.com/kplane/kplane/cmd/kplane")
	envs := t.TempDir()
	dev, err := os.ReadFile("../../environments/dev/platform.yaml")
	require.NoError(t, err)
	loose := strings.Replace(string(dev), "mode: enforce", "mode: audit", 1)
	require.NotEqual(t, string(dev), loose)
	for name, content := range map[string]string{"dev": string(dev), "loose": loose} {
		require.NoError(t, os.MkdirAll(filepath.Join(envs, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(envs, name, "platform.yaml"), []byte(strings.ReplaceAll(content, "kplane:environment: dev", "kplane:environment: "+name)), 0o600))
	}
	preview := func(env, lang string) (string, string, error) {
		reports := filepath.Join(t.TempDir(), env)
		// (A relative pack configuration, as `make preview` passes it.)
		// From the repository's root, as `make preview` runs it (the API documents' folder is
		// relative to it).
		cmd := exec.Command(kplane, "preview", "--env", env, "--environments", envs, "--kubeconfig", c.Kubeconfig, "--state", t.TempDir(),
			"--charts", os.Getenv("KPLANE_CHARTS"), "--policy-pack", packBin, "--policy-pack-config", "environments/dev/policy-pack.json", "--report-dir", reports, "--lang", lang)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		return string(out), reports, err
	}

	out, reports, err := preview("dev", "en")
	require.NoError(t, err, out)
	assert.Contains(t, out, "0 mandatory")
	md, err := os.ReadFile(filepath.Join(reports, "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "**0** mandatory violations")
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "| advisory |") { // a chart's object is named <release>:<name>
			cols := strings.Split(line, "|")
			assert.Contains(t, cols[3], ":", "kplane's own objects pass kplane's policies; only upstream charts' are reported: %s", line)
		}
	}
	var rep struct {
		Mandatory int `json:"mandatoryViolations"`
		Controls  []struct{ Framework, ID, Status string }
	}
	js, err := os.ReadFile(filepath.Join(reports, "report.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(js, &rep))
	assert.Zero(t, rep.Mandatory)
	assert.GreaterOrEqual(t, len(rep.Controls), 131+24)
	var applied struct{ NotApplied []string }
	require.NoError(t, json.Unmarshal(js, &applied))
	assert.NotContains(t, applied.NotApplied, "kplane-keycloak-admin-mfa", "dev's realm was judged")
	assert.NotContains(t, applied.NotApplied, "kplane-admission-enforced", "dev's admission policies were judged")
	assert.NotContains(t, applied.NotApplied, "kplane-backup-scheduled", "dev's backup schedules were judged")
	assert.NotContains(t, applied.NotApplied, "kplane-mesh-mtls-strict", "dev's mesh was judged")
	for _, c := range rep.Controls {
		if c.Framework == "KISA" && c.ID == "CA-03" {
			assert.Equal(t, "pass", c.Status, "MFA for administrators, by the realm dev declares")
		}
	}

	// A pack configuration with a misspelt level is refused by kplane, naming the file and the fix.
	badConfig := filepath.Join(t.TempDir(), "policy-pack.json")
	require.NoError(t, os.WriteFile(badConfig, []byte(`{"kplane-no-privileged": "strict"}`), 0o600))
	cmd := exec.Command(kplane, "preview", "--env", "dev", "--environments", envs, "--kubeconfig", c.Kubeconfig, "--state", t.TempDir(),
		"--policy-pack", packBin, "--policy-pack-config", badConfig)
	bad, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(bad), `kplane-no-privileged: level "strict"; use mandatory, advisory or disabled`)

	out, reports, err = preview("loose", "ko")
	require.Error(t, err, "mandatory violations fail the PR check")
	assert.Contains(t, out, "kplane-admission-enforced")
	md, err = os.ReadFile(filepath.Join(reports, "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "컴플라이언스 보고서: loose")
	assert.Contains(t, string(md), "| 필수 | `kplane-admission-enforced`")
	assert.NotContains(t, strings.ReplaceAll(string(md), "| 필수 | `kplane-admission-enforced`", ""), "| 필수 | `kplane-", "exactly that violation, nothing else")
	html, err := os.ReadFile(filepath.Join(reports, "report.html"))
	require.NoError(t, err)
	assert.Contains(t, string(html), `<html lang="ko">`)
}
