package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/internal/images"
	"github.com/kplane/kplane/tests/testbed"
)

// textAdvisory is GitHub's advisory for CVE-2022-32149 (golang.org/x/text/language: a crafted
// Accept-Language header makes ParseAcceptLanguage take very long), fixed in v0.3.8.
var textAdvisory = testbed.GoAdvisory{ID: "CVE-2022-32149", Module: "golang.org/x/text", Severity: "HIGH",
	Title:      "golang.org/x/text/language: ParseAcceptLanguage takes a long time to parse complex tags",
	Vulnerable: "<0.3.8", Patched: "0.3.8"}

// TestImageTrust: image trust end to end, every piece the real software. An app is built here
// twice, with golang.org/x/text v0.3.8 and with v0.3.7 (which CVE-2022-32149 affects), pushed to
// a real registry (distribution), signed with cosign, scanned by Trivy against a database built
// with Trivy's own library, and the scan attested with cosign. sigstore's policy-controller,
// serving the API server's admission webhooks, then applies the policy kplane rendered: it admits
// the signed image with a clean, recent scan and refuses an unsigned one, one signed by another
// key, one whose scan has a finding at the environment's limit, and one whose scan is too old.
func TestImageTrust(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := testbed.StartN(t, 1, testbed.Options{APIServerArgs: []string{"--enable-aggregator-routing=true"}})[0]
	// First, as its chart would be: the policy's CRD converts through policy-controller's webhook.
	testbed.StartPolicyController(t, c, moduleDir(t, "github.com/sigstore/policy-controller@"+pinned(t, "POLICY_CONTROLLER_VERSION")))
	reg := testbed.StartRegistry(t)
	cosign := testbed.NewCosign(t)
	release := cosign.KeyPair(t, "release")
	cosign.KeyPair(t, "other")
	trivyCache := t.TempDir()
	require.NoError(t, testbed.TrivyDB(trivyCache, textAdvisory))

	fixed, vulnerable := textApp(t, "v0.3.8"), textApp(t, "v0.3.7")
	refs := map[string]string{}
	for c, bin := range map[string][]byte{"trusted": fixed, "unsigned": fixed, "other-key": fixed, "vulnerable": vulnerable, "stale-scan": fixed} {
		refs[c] = push(t, reg, c, bin)
	}
	for c, key := range map[string]string{"trusted": "release", "vulnerable": "release", "stale-scan": "release", "other-key": "other"} {
		cosign.Sign(t, key, refs[c])
		scan := testbed.TrivyScan(t, trivyCache, refs[c])
		findings := scanFindings(t, scan)
		if c == "vulnerable" {
			assert.Equal(t, []string{"CVE-2022-32149 golang.org/x/text v0.3.7 HIGH"}, findings, "Trivy finds the advisory in the binary's module list")
		} else {
			assert.Empty(t, findings, "%s: v0.3.8 is fixed", c)
		}
		if c == "stale-scan" {
			scan = scannedAt(t, scan, time.Now().Add(-hardenedcluster.DefaultMaxScanAge-24*time.Hour))
		}
		cosign.AttestVuln(t, key, refs[c], scan)
	}

	args := &hardenedcluster.Args{
		Teams:      []hardenedcluster.Team{{Name: "web", Namespaces: []string{"trust-web"}}},
		Admission:  hardenedcluster.AdmissionArgs{AllowedRegistries: []string{reg.Host + "/"}},
		ImageTrust: hardenedcluster.ImageTrustArgs{Keys: []hardenedcluster.SigningKey{{Name: "release", PublicKey: release}}, MaxSeverity: "HIGH"},
	}
	s := hardenedStack(t, c, "imagetrust", args, nil)
	_, err := s.Up(ctx)
	require.NoError(t, err, "the policy is created through policy-controller's own conversion and validation")
	dc, err := c.Dynamic()
	require.NoError(t, err)
	// With a severity limit, the proof is the scan attestation the release key signed (a DSSE
	// envelope whose subject is the image's digest): policy-controller checks an authority's
	// attestations instead of its signatures when it lists any.
	admission(t, dc, refs, "attestations", "trusted", map[string]string{
		"unsigned":   "attestation key validation failed for authority release for " + refs["unsigned"] + ": no matching attestations",
		"other-key":  "no matching attestations: accepted signatures do not match threshold, Found: 0, Expected 1",
		"vulnerable": "failed evaluating rego policy for type vulnerability-scan",
		"stale-scan": "failed evaluating rego policy for type vulnerability-scan",
	})
	// Without one, the image's cosign signature by the release key.
	args.ImageTrust.MaxSeverity = ""
	_, err = s.Up(ctx)
	require.NoError(t, err)
	admission(t, dc, refs, "signatures", "vulnerable", map[string]string{
		"unsigned":  "signature key validation failed for authority release for " + refs["unsigned"] + ": no signatures found",
		"other-key": "signature key validation failed for authority release for " + refs["other-key"] + ": no matching signatures",
	})

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	noKplaneObjects(t, dc)
}

// admission waits for policy-controller to have compiled kplane's policy (its authority
// checking proof: "attestations" or "signatures"), then dry-runs a pod of each case's image in
// the team namespace: admitted is admitted, every case of denied is refused with its reason.
func admission(t *testing.T, dc dynamic.Interface, refs map[string]string, proof, admitted string, denied map[string]string) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		compiled := str(get(t, dc, gvrConfig, testbed.PolicyControllerNamespace, "config-image-policies"), "data", "kplane-signed-images")
		return compiled != "" && strings.Contains(compiled, `"attestations"`) == (proof == "attestations")
	}, time.Minute, 200*time.Millisecond, "policy-controller compiles the policy")
	pods := dc.Resource(gvrPod).Namespace("trust-web")
	create := func(c string) func() error {
		return func() error {
			spec := rules.GoodPodSpec()
			rules.Container(spec)["image"] = refs[c]
			obj, _ := workloadObject("Pod", "trust-web", c, spec)
			_, err := pods.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{"All"}})
			return err
		}
	}
	assert.NoError(t, create(admitted)(), "%s: %s is admitted", proof, admitted)
	for c, want := range denied {
		t.Run(proof+"/denied/"+c, func(t *testing.T) { refused(t, create(c), want) })
	}
}

// textApp is a static binary built with golang.org/x/text at version: a program that parses an
// Accept-Language header, as a web service would.
func textApp(t *testing.T, version string) []byte {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module kplane.local/textapp\n\ngo 1.22\n\nrequire golang.org/x/text " + version + "\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\n\t\"golang.org/x/text/language\"\n)\n\nfunc main() {\n\ttags, _, err := language.ParseAcceptLanguage(os.Getenv(\"ACCEPT_LANGUAGE\"))\n\tfmt.Println(tags, err)\n}\n",
	}
	for f, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(content), 0o600))
	}
	bin, err := images.Compile(context.Background(), dir, ".")
	require.NoError(t, err)
	return bin
}

// push pushes an image of bin (and a file naming the case, so every case has its own digest) to
// the registry as kplane-test/app:<case> and returns its reference by digest.
func push(t *testing.T, reg *testbed.Registry, c string, bin []byte) string {
	t.Helper()
	img, err := images.FromFiles("kplane-test-app", []images.File{{Path: "/app", Content: bin, Exec: true}, {Path: "/case", Content: []byte(c)}}, []string{"/app"}, images.User)
	require.NoError(t, err)
	tag, err := name.NewTag(reg.Host + "/kplane-test/app:" + c)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	digest, err := img.Digest()
	require.NoError(t, err)
	return reg.Host + "/kplane-test/app@" + digest.String()
}

// scanFindings lists a cosign-vuln predicate's findings as "ID package version severity".
func scanFindings(t *testing.T, predicate []byte) []string {
	t.Helper()
	var scan struct {
		Scanner struct {
			Result struct {
				Results []struct {
					Vulnerabilities []struct{ VulnerabilityID, PkgName, InstalledVersion, Severity string }
				}
			}
		}
	}
	require.NoError(t, json.Unmarshal(predicate, &scan), "%s", predicate)
	var found []string
	for _, r := range scan.Scanner.Result.Results {
		for _, v := range r.Vulnerabilities {
			found = append(found, v.VulnerabilityID+" "+v.PkgName+" "+v.InstalledVersion+" "+v.Severity)
		}
	}
	return found
}

// scannedAt is the predicate as if the scan had run at when.
func scannedAt(t *testing.T, predicate []byte, when time.Time) []byte {
	t.Helper()
	var scan map[string]any
	require.NoError(t, json.Unmarshal(predicate, &scan))
	meta := scan["metadata"].(map[string]any)
	meta["scanStartedOn"] = when.Add(-time.Second).UTC().Format(time.RFC3339)
	meta["scanFinishedOn"] = when.UTC().Format(time.RFC3339)
	out, err := json.Marshal(scan)
	require.NoError(t, err)
	return out
}
