// Package policies assembles kplane's policy pack: the admission baseline the environment's
// hardened cluster installs, RBAC, resource limits, the platform's guard rails, the platform
// services (backups, identity realms, mesh mTLS, public routes), and the managed control plane
// and buckets where they are AWS. The rules themselves live in the packages below.
package policies

import (
	"fmt"
	"slices"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/policies/aws"
	"github.com/kplane/kplane/policies/kubernetes"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/policies/services"
)

// Pack is kplane's Kubernetes policy pack at its defaults (what kplane-kubernetes serves):
// the admission baseline, RBAC, resource limits, the platform's guard rails, the platform
// services (backups, identity realms, mesh mTLS, public routes), and the managed control plane
// and buckets where they are AWS.
// Served by the policy pack, it judges each stack by that stack's own admission arguments
// (SecurityConfig): the rules, registries, exceptions and exempt namespaces its cluster enforces.
func Pack() (*pack.Pack, error) { return PackWith(SecurityOnly) }

// SecurityFor reads from a stack's config the hardened cluster's arguments its cluster enforces.
type SecurityFor func(config map[string]string) (*hardenedcluster.Args, error)

// PackWith is Pack with the stack's admission arguments read by securityFor: the composed
// platform's (stacks/platform.SecurityFor) adds the namespaces its own components run in.
func PackWith(securityFor SecurityFor) (*pack.Pack, error) {
	p, err := PackFor(&hardenedcluster.Args{})
	if err != nil {
		return nil, err
	}
	p.ForStack = func(config map[string]string) (*pack.Pack, error) {
		args, err := securityFor(config)
		if err != nil {
			return nil, err
		}
		return PackFor(args)
	}
	return p, nil
}

// SecurityConfig is the platform stack's config key holding the hardened cluster's arguments.
const SecurityConfig = "kplane:security"

// SecurityOnly reads SecurityConfig alone; a stack without it is judged at the defaults.
func SecurityOnly(config map[string]string) (*hardenedcluster.Args, error) {
	var args hardenedcluster.Args
	if err := field.Decode(field.NewPath(SecurityConfig), config[SecurityConfig], &args).OrNil(); err != nil {
		return nil, fmt.Errorf("%v (see docs/components/hardenedcluster.md for the fields)", err)
	}
	return &args, nil
}

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
