package hardenedcluster

import (
	"testing"

	"github.com/kplane/kplane/tests/testbed/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImageTrustValidate(t *testing.T) {
	pub := pki.CosignPublicKey(t)
	cases := map[string]struct {
		args Args
		want string
	}{
		"off":                  {Args{}, ""},
		"images without key":   {Args{ImageTrust: ImageTrustArgs{Images: []string{"r/**"}}}, "imageTrust.keys: required; images, mode, maxSeverity and maxScanAge need at least one cosign public key"},
		"not PEM":              {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: "ssh-ed25519 AAAA"}}, Images: []string{"r/**"}}}, "imageTrust.keys[0].publicKey: not a PEM public key; paste the content of cosign.pub"},
		"private key":          {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"}}, Images: []string{"r/**"}}}, "not a PEM public key"},
		"duplicate name":       {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "a", PublicKey: pub}, {Name: "a", PublicKey: pub}}, Images: []string{"r/**"}}}, `imageTrust.keys[1].name "a"`},
		"no images":            {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}}}, "imageTrust.images: required; say which images must be signed"},
		"bad mode":             {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}, Images: []string{"r/**"}, Mode: "audit"}}, `imageTrust.mode "audit"`},
		"severity without key": {Args{ImageTrust: ImageTrustArgs{MaxSeverity: "HIGH"}}, "imageTrust.keys: required"},
		"bad scan age":         {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}, Images: []string{"r/**"}, MaxSeverity: "HIGH", MaxScanAge: "7d"}}, `imageTrust.maxScanAge "7d": a Go duration of at least 1h`},
		"scan age too short":   {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}, Images: []string{"r/**"}, MaxSeverity: "HIGH", MaxScanAge: "5m"}}, `imageTrust.maxScanAge "5m"`},
		"scan age alone":       {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}, Images: []string{"r/**"}, MaxScanAge: "24h"}}, "the age of a scan needs maxSeverity"},
		"bad severity":         {Args{ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}, Images: []string{"r/**"}, MaxSeverity: "SEVERE"}}, `imageTrust.maxSeverity "SEVERE": use CRITICAL, HIGH, MEDIUM or LOW`},
		"images from registries": {Args{Admission: AdmissionArgs{AllowedRegistries: []string{"registry.example.com/"}},
			ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}}}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			expectValidation(t, &tc.args, tc.want)
		})
	}
}

func TestImageTrustGraph(t *testing.T) {
	pub := pki.CosignPublicKey(t)
	rec, err := run(t, &Args{
		Teams:      []Team{{Name: "web", Namespaces: []string{"web"}}},
		Admission:  AdmissionArgs{AllowedRegistries: []string{"registry.example.com/team/"}},
		ImageTrust: ImageTrustArgs{Keys: []SigningKey{{Name: "release", PublicKey: pub}}, Mode: "warn"},
	})
	require.NoError(t, err)
	cips := rec.ofType("kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy")
	require.Len(t, cips, 1)
	spec := cips[0].Inputs["spec"].ObjectValue()
	assert.Equal(t, "registry.example.com/team/**", spec["images"].ArrayValue()[0].ObjectValue()["glob"].StringValue())
	auth := spec["authorities"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, "release", auth["name"].StringValue())
	assert.Equal(t, pub, auth["key"].ObjectValue()["data"].StringValue())
	assert.Equal(t, "warn", spec["mode"].StringValue())
	ns := rec.ofType("kubernetes:core/v1:Namespace")
	require.Len(t, ns, 1)
	assert.Equal(t, "true", ns[0].Inputs["metadata"].ObjectValue()["labels"].ObjectValue()[policyControllerInclude].StringValue(), "namespaces opt into policy-controller")

	rec, err = run(t, &Args{Teams: []Team{{Name: "web", Namespaces: []string{"web"}}}})
	require.NoError(t, err)
	assert.Empty(t, rec.ofType("kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy"), "no keys, no policy")
	assert.NotContains(t, rec.ofType("kubernetes:core/v1:Namespace")[0].Inputs["metadata"].ObjectValue()["labels"].ObjectValue(), policyControllerInclude)
}
