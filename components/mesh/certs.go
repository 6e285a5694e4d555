package mesh

import (
	"fmt"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// Certificates: how long workload certificates live, when proxies renew them, and the CA.
type Certificates struct {
	// WorkloadTTL each proxy asks for (default 24h) and MaxWorkloadTTL istiod grants (default 48h).
	WorkloadTTL    string `json:"workloadTTL,omitempty"`
	MaxWorkloadTTL string `json:"maxWorkloadTTL,omitempty"`
	// RotateAt is the share of the lifetime after which a proxy renews (default 0.5: a 24h
	// certificate is renewed after 12h, so an istiod outage of up to 12h breaks nothing).
	RotateAt float64 `json:"rotateAt,omitempty"`
	// CA plugged into istiod (nil: istiod's self-signed root, fine for one cluster only).
	CA *CA `json:"ca,omitempty"`
	// ExpiryAlertDays: the alert fires when the root or the CA chain expires within this many
	// days (default 30).
	ExpiryAlertDays int `json:"expiryAlertDays,omitempty"`
}

// CA is the intermediate istiod signs with: from Pulumi secrets, or issued by cert-manager.
type CA struct {
	// Secret: PEM root, intermediate certificate and key (Pulumi secrets), and the chain up to
	// the root; stored as istio-system/cacerts, which istiod reads at start.
	Secret *SecretCA `json:"secret,omitempty"`
	// CertManager issues the intermediate into istio-system/cacerts and renews it.
	CertManager *CertManagerCA `json:"certManager,omitempty"`
}

// SecretCA holds the CA material; every field is kept secret.
type SecretCA struct {
	RootCert  pulumi.StringInput `json:"-"`
	CertChain pulumi.StringInput `json:"-"`
	CACert    pulumi.StringInput `json:"-"`
	CAKey     pulumi.StringInput `json:"-"`
}

// CertManagerCA: a cert-manager Certificate (isCA) from an issuer the platform already has.
type CertManagerCA struct {
	IssuerName string `json:"issuerName"`
	// IssuerKind: ClusterIssuer (default) or Issuer (in istio-system).
	IssuerKind string `json:"issuerKind,omitempty"`
	// Duration of the intermediate (default 8760h: a year) and RenewBefore (default 720h).
	Duration    string `json:"duration,omitempty"`
	RenewBefore string `json:"renewBefore,omitempty"`
}

func (c Certificates) withDefaults() Certificates {
	if c.WorkloadTTL == "" {
		c.WorkloadTTL = "24h"
	}
	if c.MaxWorkloadTTL == "" {
		c.MaxWorkloadTTL = "48h"
	}
	if c.RotateAt == 0 {
		c.RotateAt = 0.5
	}
	if c.ExpiryAlertDays == 0 {
		c.ExpiryAlertDays = 30
	}
	if m := c.CA; m != nil && m.CertManager != nil {
		cm := *m.CertManager
		if cm.IssuerKind == "" {
			cm.IssuerKind = "ClusterIssuer"
		}
		if cm.Duration == "" {
			cm.Duration = "8760h"
		}
		if cm.RenewBefore == "" {
			cm.RenewBefore = "720h"
		}
		c.CA = &CA{CertManager: &cm}
	}
	return c
}

func (c Certificates) validate() error {
	var errs field.ErrorList
	d := c.withDefaults()
	ttl, bad := duration(field.At("certificates.workloadTTL"), d.WorkloadTTL)
	errs.Add(bad)
	maxTTL, bad := duration(field.At("certificates.maxWorkloadTTL"), d.MaxWorkloadTTL)
	errs.Add(bad)
	switch {
	case ttl > maxTTL:
		errs.Add(field.Invalid(field.At("certificates.workloadTTL"), d.WorkloadTTL, fmt.Sprintf("longer than maxWorkloadTTL %s: istiod would cut it; raise maxWorkloadTTL or shorten workloadTTL", d.MaxWorkloadTTL)))
	case d.RotateAt <= 0 || d.RotateAt >= 1:
		errs.Add(field.Invalid(field.At("certificates.rotateAt"), c.RotateAt, "the share of the lifetime after which proxies renew, between 0 and 1 (e.g. 0.5)"))
	case d.ExpiryAlertDays < 1:
		errs.Add(field.Invalid(field.At("certificates.expiryAlertDays"), c.ExpiryAlertDays, "at least 1"))
	}
	if ca := d.CA; ca != nil {
		switch {
		case (ca.Secret == nil) == (ca.CertManager == nil):
			errs.Add(field.Invalid(field.At("certificates.ca"), nil, "give exactly one of secret or certManager"))
		case ca.Secret != nil && (ca.Secret.RootCert == nil || ca.Secret.CertChain == nil || ca.Secret.CACert == nil || ca.Secret.CAKey == nil):
			errs.Add(field.Invalid(field.At("certificates.ca.secret"), nil, "rootCert, certChain, caCert and caKey are all required (PEM)"))
		case ca.CertManager != nil:
			cm := ca.CertManager
			if !dnsLabel.MatchString(cm.IssuerName) {
				errs.Add(field.Invalid(field.At("certificates.ca.certManager.issuerName"), cm.IssuerName, "the issuer's name"))
			}
			if cm.IssuerKind != "ClusterIssuer" && cm.IssuerKind != "Issuer" {
				errs.Add(field.Invalid(field.At("certificates.ca.certManager.issuerKind"), cm.IssuerKind, "ClusterIssuer or Issuer"))
			}
			life, badLife := duration(field.At("certificates.ca.certManager.duration"), cm.Duration)
			renew, badRenew := duration(field.At("certificates.ca.certManager.renewBefore"), cm.RenewBefore)
			errs.Add(badLife, badRenew)
			if badLife == nil && badRenew == nil && (renew >= life || life < 2*maxTTL) {
				errs.Add(field.Invalid(field.At("certificates.ca.certManager"), nil, fmt.Sprintf("renewBefore %s must be shorter than duration %s, and duration at least twice maxWorkloadTTL", cm.RenewBefore, cm.Duration)))
			}
		}
	}
	return errs.OrNil()
}

// istiodEnv: the lifetimes istiod grants.
func (c Certificates) istiodEnv() map[string]any {
	return map[string]any{"DEFAULT_WORKLOAD_CERT_TTL": c.WorkloadTTL, "MAX_WORKLOAD_CERT_TTL": c.MaxWorkloadTTL}
}

// proxyMetadata: what each proxy asks for and when it renews.
func (c Certificates) proxyMetadata() map[string]any {
	return map[string]any{"SECRET_TTL": c.WorkloadTTL, "SECRET_GRACE_PERIOD_RATIO": fmt.Sprint(1 - c.RotateAt)}
}

// resources: istio-system/cacerts, from secrets or from cert-manager.
func (ca *CA) resources(ctx *pulumi.Context, name string, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	if s := ca.Secret; s != nil {
		sec, err := corev1.NewSecret(ctx, name+"-cacerts", &corev1.SecretArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("cacerts"), Namespace: pulumi.String(SystemNamespace),
				Labels: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}},
			StringData: pulumi.StringMap{"root-cert.pem": secret(s.RootCert), "cert-chain.pem": secret(s.CertChain),
				"ca-cert.pem": secret(s.CACert), "ca-key.pem": secret(s.CAKey)}},
			opts...)
		if err != nil {
			return nil, err
		}
		return []pulumi.Resource{sec}, nil
	}
	cm := ca.CertManager
	// istiod reads cert-manager's layout too (tls.crt, tls.key, ca.crt in cacerts).
	cert, err := k8sobj.Object(ctx, name+"-intermediate", map[string]any{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
		"metadata": map[string]any{"name": "istio-intermediate", "namespace": SystemNamespace, "labels": managed()},
		"spec": map[string]any{"secretName": "cacerts", "isCA": true, "commonName": "istio intermediate CA", "duration": cm.Duration, "renewBefore": cm.RenewBefore,
			"privateKey": map[string]any{"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
			"usages":     []any{"digital signature", "key encipherment", "cert sign"},
			"issuerRef":  map[string]any{"name": cm.IssuerName, "kind": cm.IssuerKind, "group": "cert-manager.io"}}}, opts...)
	if err != nil {
		return nil, err
	}
	return []pulumi.Resource{cert}, nil
}

func secret(v pulumi.StringInput) pulumi.StringOutput {
	return pulumi.ToSecret(v.ToStringOutput()).(pulumi.StringOutput)
}

// AlertRules is the Prometheus rule file of the mesh's certificates: the root or the CA chain
// expiring within days, and istiod failing to sign workload certificates.
func AlertRules(days int) string {
	rule := func(alert, expr, forDur, severity, summary string) string {
		return fmt.Sprintf("      - alert: %s\n        expr: %s\n        for: %s\n        labels:\n          severity: %s\n        annotations:\n          summary: %q\n          runbook: \"docs/components/mesh.md#certificates\"\n",
			alert, expr, forDur, severity, summary)
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: kplane-mesh-certificates\n    rules:\n")
	b.WriteString(rule("IstioRootCertificateExpiring", fmt.Sprintf("min(citadel_server_root_cert_expiry_timestamp) - time() < %d * 86400", days), "1h", "critical",
		fmt.Sprintf("The mesh root certificate expires within %d days: rotate the root before workloads stop trusting each other.", days)))
	b.WriteString(rule("IstioCACertificateExpiring", fmt.Sprintf("min(citadel_server_cert_chain_expiry_timestamp) - time() < %d * 86400", days), "1h", "warning",
		fmt.Sprintf("istiod's signing certificate (cacerts) expires within %d days: renew the intermediate.", days)))
	b.WriteString(rule("IstioCertificateSigningFailing", "sum(rate(citadel_server_csr_sign_err_count[5m])) > 0", "10m", "critical",
		"istiod fails to sign workload certificates: proxies cannot renew and mutual TLS breaks when their certificates expire."))
	return b.String()
}
