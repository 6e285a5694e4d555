package hardenedcluster

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ImageTrustArgs require container images to carry a cosign signature by one of Keys, checked
// at admission by sigstore's policy-controller (its ClusterImagePolicy; the controller itself is
// installed from its chart). Empty Keys: no signature policy.
type ImageTrustArgs struct {
	// Keys are cosign public keys (the PEM of cosign.pub); a signature by any one suffices.
	Keys []SigningKey `json:"keys,omitempty"`
	// Images are the globs the policy covers, e.g. "registry.example.com/**". Default: every
	// Admission.AllowedRegistries prefix followed by "**".
	Images []string `json:"images,omitempty"`
	// Mode is "enforce" (default: unsigned images are refused) or "warn".
	Mode ImageTrustMode `json:"mode,omitempty"`
	// MaxSeverity requires a vulnerability scan of the image, attested with one of the keys
	// (trivy image --format cosign-vuln, then cosign attest --type vuln), with no finding at or
	// above this severity: "CRITICAL" or "HIGH" (the usual limits), "MEDIUM" or "LOW". The
	// attestation, signed by the key over the image's digest, is then the proof policy-controller
	// checks in place of the image's signature (an authority listing attestations is checked on
	// those). Empty: the images' cosign signatures only.
	MaxSeverity string `json:"maxSeverity,omitempty"`
	// MaxScanAge is how old that scan may be (its scanFinishedOn), as a Go duration, e.g.
	// "168h": an image whose last scan is older is refused until it is scanned and attested
	// again, so advisories published after its release reach it. Default 168h (a week).
	MaxScanAge string `json:"maxScanAge,omitempty"`
}

// DefaultMaxScanAge is how old a vulnerability scan may be when MaxScanAge is not set.
const DefaultMaxScanAge = 7 * 24 * time.Hour

// scanAge is MaxScanAge as a duration (DefaultMaxScanAge when empty; validated).
func (it ImageTrustArgs) scanAge() time.Duration {
	d, err := time.ParseDuration(it.MaxScanAge)
	if err != nil || it.MaxScanAge == "" {
		return DefaultMaxScanAge
	}
	return d
}

// severityRank orders Trivy's severities.
var severityRank = map[string]int{"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}

// vulnPolicy is the Rego policy-controller evaluates on the image's vulnerability attestation
// (package sigstore, rule isCompliant; cosign's rego evaluator): the attested scan lists no
// vulnerability of severity rank >= limit, and finished at most maxAge ago.
func vulnPolicy(limit string, maxAge time.Duration) string {
	return fmt.Sprintf(`package sigstore

import rego.v1

ranks := {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}

blocking contains v.VulnerabilityID if {
	some result in input.predicate.scanner.result.Results
	some v in result.Vulnerabilities
	ranks[v.Severity] >= %d
}

recent if {
	time.now_ns() - time.parse_rfc3339_ns(input.predicate.metadata.scanFinishedOn) <= %d
}

default isCompliant := false

isCompliant if {
	input.predicateType == "https://cosign.sigstore.dev/attestation/vuln/v1"
	count(blocking) == 0
	recent
}
`, severityRank[limit], maxAge.Nanoseconds())
}

// SigningKey is one trusted cosign public key.
type SigningKey struct {
	Name      string `json:"name"`      // DNS-1123 label naming the key's owner, e.g. "release"
	PublicKey string `json:"publicKey"` // PEM ("-----BEGIN PUBLIC KEY-----")
}

// policyControllerInclude is the namespace label that opts a namespace into policy-controller.
const policyControllerInclude = "policy.sigstore.dev/include"

func (a *Args) imageGlobs() []string {
	if len(a.ImageTrust.Images) > 0 {
		return a.ImageTrust.Images
	}
	var globs []string
	for _, r := range a.Admission.AllowedRegistries {
		globs = append(globs, strings.TrimSuffix(r, "/")+"/**")
	}
	return globs
}

// ImageTrustMode is what an unsigned image does.
type ImageTrustMode string

// The modes: refuse the pod, or admit it with a warning.
const (
	TrustEnforce ImageTrustMode = "enforce"
	TrustWarn    ImageTrustMode = "warn"
)

func (a *Args) validateImageTrust() field.ErrorList {
	it, p := a.ImageTrust, field.Root().Child("imageTrust")
	var errs field.ErrorList
	if len(it.Keys) == 0 {
		if len(it.Images) > 0 || it.Mode != "" || it.MaxSeverity != "" || it.MaxScanAge != "" {
			errs.Add(field.Required(p.Child("keys"), "images, mode, maxSeverity and maxScanAge need at least one cosign public key"))
		}
		return errs
	}
	errs.Add(field.Enum(p.Child("mode"), it.Mode, "", TrustEnforce, TrustWarn))
	if _, ok := severityRank[it.MaxSeverity]; it.MaxSeverity != "" && !ok {
		errs.Add(field.Invalid(p.Child("maxSeverity"), it.MaxSeverity, "use CRITICAL, HIGH, MEDIUM or LOW (Trivy's severities), or leave it empty"))
	}
	if it.MaxScanAge != "" {
		if d, err := time.ParseDuration(it.MaxScanAge); err != nil || d < time.Hour {
			errs.Add(field.Invalid(p.Child("maxScanAge"), it.MaxScanAge, `a Go duration of at least 1h, e.g. "168h" (a week)`))
		} else if it.MaxSeverity == "" {
			errs.Add(field.Invalid(p.Child("maxScanAge"), it.MaxScanAge, "the age of a scan needs maxSeverity: set both, or neither"))
		}
	}
	seen := map[string]bool{}
	for i, k := range it.Keys {
		q := p.Child("keys").Index(i)
		if !dns1123Label.MatchString(k.Name) || seen[k.Name] {
			errs.Add(field.Invalid(q.Child("name"), k.Name, "a unique DNS-1123 label naming the key"))
		}
		seen[k.Name] = true
		block, _ := pem.Decode([]byte(k.PublicKey))
		if block == nil || block.Type != "PUBLIC KEY" {
			errs.Add(field.Invalid(q.Child("publicKey"), nil, "not a PEM public key; paste the content of cosign.pub (-----BEGIN PUBLIC KEY-----)"))
		} else if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			errs.Add(field.Invalid(q.Child("publicKey"), nil, err.Error()))
		}
	}
	if len(a.imageGlobs()) == 0 {
		errs.Add(field.Required(p.Child("images"), `say which images must be signed (e.g. "registry.example.com/**"), or set admission.allowedRegistries`))
	}
	return errs
}

// newImageTrust creates the ClusterImagePolicy. policy-controller's CRDs must exist (its chart).
func newImageTrust(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) error {
	it := args.ImageTrust
	if len(it.Keys) == 0 {
		return nil
	}
	images := []any{}
	for _, g := range args.imageGlobs() {
		images = append(images, map[string]any{"glob": g})
	}
	authorities := []any{}
	for _, k := range it.Keys {
		authority := map[string]any{"name": k.Name, "key": map[string]any{"data": k.PublicKey, "hashAlgorithm": "sha256"}}
		if it.MaxSeverity != "" {
			authority["attestations"] = []any{map[string]any{"name": "vulnerability-scan", "predicateType": "vuln",
				"policy": map[string]any{"type": "rego", "data": vulnPolicy(it.MaxSeverity, it.scanAge())}}}
		}
		authorities = append(authorities, authority)
	}
	mode := it.Mode
	if mode == "" {
		mode = "enforce"
	}
	_, err := apiextensions.NewCustomResource(ctx, name+"-signed-images", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String("policy.sigstore.dev/v1beta1"),
		Kind:       pulumi.String("ClusterImagePolicy"),
		Metadata: &metav1.ObjectMetaArgs{
			Name:        pulumi.String("kplane-signed-images"),
			Labels:      pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)},
			Annotations: pulumi.StringMap{wellknown.ControlsAnnotation: pulumi.String("CIS 5.5.1, KISA Master-17, ISMS-P 2.10.x")},
		},
		OtherFields: kubernetes.UntypedArgs{"spec": map[string]any{"images": images, "authorities": authorities, "mode": mode}},
	}, opts...)
	return err
}
