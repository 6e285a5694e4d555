package hardenedcluster

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"

	"github.com/kplane/kplane/internal/field"
)

// APIAccessArgs describe who may reach the Kubernetes API endpoint (CIS 1.2.x, KISA Master-01/06):
// from which networks, with client certificates of which CAs, and which pods may call it.
type APIAccessArgs struct {
	// AllowedCIDRs are the networks allowed to reach the API endpoint (the API gateway's egress,
	// the admins' VPN). Output as AllowedCIDRs for the platform's allow-list (EKS public access
	// CIDRs, AKS authorized IP ranges, GKE master authorized networks, a load balancer's source
	// ranges). kplane does not open the endpoint to 0.0.0.0/0: it is refused.
	AllowedCIDRs []string `json:"allowedCidrs,omitempty"`
	// ClientCAs is a PEM bundle of CAs whose client certificates the API server accepts (mTLS).
	// Output as ClientCABundle for the API server's --client-ca-file where the platform runs it.
	ClientCAs string `json:"clientCAs,omitempty"`
	// EndpointCIDRs are the API server's endpoint addresses as pods reach them (after the
	// kubernetes Service's translation). Team namespaces whose services mount a token may send to
	// them on 443/6443; everyone else stays isolated from the API.
	EndpointCIDRs []string `json:"endpointCidrs,omitempty"`
}

func parseCIDRs(p *field.Path, cidrs []string) ([]netip.Prefix, field.ErrorList) {
	var out []netip.Prefix
	var errs field.ErrorList
	for i, c := range cidrs {
		prefix, err := netip.ParsePrefix(c)
		switch {
		case err != nil:
			errs.Add(field.Invalid(p.Index(i), c, "not a CIDR (e.g. 203.0.113.0/24)"))
		case prefix.Masked() != prefix:
			errs.Addf(p.Index(i), c, "host bits set; did you mean %s?", prefix.Masked())
		default:
			out = append(out, prefix)
		}
	}
	return out, errs
}

func (a *Args) validateAPIAccess() field.ErrorList {
	p := field.Root().Child("apiAccess")
	allowed, errs := parseCIDRs(p.Child("allowedCidrs"), a.APIAccess.AllowedCIDRs)
	for i, prefix := range allowed {
		if prefix.Bits() == 0 {
			errs.Add(field.Invalid(p.Child("allowedCidrs").Index(i), prefix.String(), "opens the API endpoint to everyone (KISA Master-01); list the networks that need it"))
		}
	}
	_, endpointErrs := parseCIDRs(p.Child("endpointCidrs"), a.APIAccess.EndpointCIDRs)
	errs = append(errs, endpointErrs...)
	errs.Add(validateClientCAs(p.Child("clientCAs"), a.APIAccess.ClientCAs))
	// A service that mounts a token exists to call the API; its namespace's isolation must let it.
	open := map[string]bool{}
	for _, t := range a.Teams {
		for _, ns := range t.Namespaces {
			open[ns] = t.OpenNetwork
		}
	}
	for i, s := range a.Services {
		if s.AutomountToken && !open[s.Namespace] && len(a.APIAccess.EndpointCIDRs) == 0 {
			errs.Addf(field.Root().Child("services").Index(i), s.Name, "mounts a token, but namespace %q is isolated from the API server: set apiAccess.endpointCidrs (the API endpoint as pods reach it) or the team's openNetwork", s.Namespace)
		}
	}
	return errs
}

// validateClientCAs: PEM CA certificates only, at least one when set.
func validateClientCAs(p *field.Path, pemCAs string) *field.Error {
	if pemCAs == "" {
		return nil
	}
	rest, n := []byte(pemCAs), 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if block.Type != "CERTIFICATE" || err != nil || !cert.IsCA {
			return field.Invalid(p, nil, fmt.Sprintf("PEM block %d is not a CA certificate; give the CA certificates only, never keys", n))
		}
		n++
	}
	if n == 0 {
		return field.Invalid(p, nil, "no PEM certificate found")
	}
	return nil
}

// apiCallers are the namespaces whose services mount a token (they get egress to the API).
func (a *Args) apiCallers() map[string]bool {
	callers := map[string]bool{}
	for _, s := range a.Services {
		if s.AutomountToken {
			callers[s.Namespace] = true
		}
	}
	return callers
}
