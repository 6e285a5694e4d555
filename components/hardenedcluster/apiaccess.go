package hardenedcluster

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
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

func parseCIDRs(field string, cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %q: not a CIDR (e.g. 203.0.113.0/24)", field, i, c)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%s[%d] %q: host bits set; did you mean %s?", field, i, c, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

func (a *Args) validateAPIAccess() error {
	allowed, err := parseCIDRs("APIAccess.AllowedCIDRs", a.APIAccess.AllowedCIDRs)
	if err != nil {
		return err
	}
	for i, p := range allowed {
		if p.Bits() == 0 {
			return fmt.Errorf("APIAccess.AllowedCIDRs[%d] %q: opens the API endpoint to everyone (KISA Master-01); list the networks that need it", i, p)
		}
	}
	if _, err := parseCIDRs("APIAccess.EndpointCIDRs", a.APIAccess.EndpointCIDRs); err != nil {
		return err
	}
	if a.APIAccess.ClientCAs != "" {
		rest, n := []byte(a.APIAccess.ClientCAs), 0
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if block.Type != "CERTIFICATE" || err != nil || !cert.IsCA {
				return fmt.Errorf("APIAccess.ClientCAs: PEM block %d is not a CA certificate; give the CA certificates only, never keys", n)
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("APIAccess.ClientCAs: no PEM certificate found")
		}
	}
	// A service that mounts a token exists to call the API; its namespace's isolation must let it.
	open := map[string]bool{}
	for _, t := range a.Teams {
		for _, ns := range t.Namespaces {
			open[ns] = t.OpenNetwork
		}
	}
	for i, s := range a.Services {
		if s.AutomountToken && !open[s.Namespace] && len(a.APIAccess.EndpointCIDRs) == 0 {
			return fmt.Errorf("Services[%d] %q mounts a token, but namespace %q is isolated from the API server: set APIAccess.EndpointCIDRs (the API endpoint as pods reach it) or the team's OpenNetwork", i, s.Name, s.Namespace)
		}
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
