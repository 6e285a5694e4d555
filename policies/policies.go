// Package policies assembles kplane's policy pack: the admission baseline the environment's
// hardened cluster installs, RBAC, resource limits, the platform's guard rails, the platform
// services (backups, identity realms, mesh mTLS, public routes), and the managed control plane
// and buckets where they are AWS. The rules themselves live in the packages below.
package policies

import (
	"slices"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/policies/aws"
	"github.com/kplane/kplane/policies/kubernetes"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/policies/services"
)

// Pack is kplane's Kubernetes policy pack at its defaults (what kplane-kubernetes serves):
// the admission baseline, RBAC, resource limits, the platform's guard rails, the platform
// services (backups, identity realms, mesh mTLS, public routes), and the managed control plane
// and buckets where they are AWS.
func Pack() (*pack.Pack, error) { return PackFor(&hardenedcluster.Args{}) }

// PackFor is the pack whose admission baseline is the one args install (registries,
// exceptions, exempt namespaces, disabled rules).
func PackFor(args *hardenedcluster.Args) (*pack.Pack, error) {
	workload, err := kubernetes.WorkloadPolicies(args)
	if err != nil {
		return nil, err
	}
	// Compile the admission CEL in the background while the engine connects.
	go func() {
		for _, pol := range workload {
			pol.Check(pack.Resource{})
		}
	}()
	policies := slices.Clone(workload)
	for _, more := range [][]pack.Policy{kubernetes.RBACPolicies(), {kubernetes.ResourceLimits(), kubernetes.VaultPolicies()}, kubernetes.PlatformPolicies(),
		services.BackupPolicies(), services.IdentityPolicies(), services.MeshPolicies(), services.RoutePolicies(),
		aws.EKSPolicies(), aws.S3Policies()} {
		policies = append(policies, more...)
	}
	p := &pack.Pack{Name: "kplane-kubernetes", Version: "0.2.0", Policies: policies}
	return p, p.Validate()
}
