// Command kplane-kubernetes is kplane's Kubernetes policy pack: pass its path to
// `pulumi preview --policy-pack` (or `up`). It checks every workload a stack declares against the
// hardened cluster's admission baseline (the same CEL the API server runs), at its defaults:
// images pinned by digest, every Pod Security Standards control; resource requests and limits;
// RBAC (wildcards, secrets access, escalation verbs, nodes/proxy, cluster-admin bindings); the
// platform's guard rails and services (admission enforcing, Pod Security levels, Vault policies,
// Velero schedules, Keycloak realms, mesh mTLS, authenticated and rate-limited public routes);
// and EKS clusters and S3 buckets declared with pulumi-aws.
// Per environment, a pack configuration file (`--policy-pack-config`) sets each policy
// mandatory, advisory or disabled.
package main

import (
	"github.com/kplane/kplane/internal/cli"
	"github.com/kplane/kplane/policies"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/stacks/platform"
)

const usage = "usage: kplane-kubernetes ENGINE-ADDRESS (a policy pack: pulumi preview --policy-pack <this executable> starts it)"

func main() {
	cli.Main("kplane-kubernetes", usage, func([]string) error {
		p, err := policies.PackWith(platform.SecurityFor)
		if err != nil {
			return err
		}
		pack.Main(p)
		return nil
	})
}
