// Package hardenedcluster is kplane's security baseline for one Kubernetes cluster: team
// namespaces enforcing the Pod Security Standards (restricted by default, version pinned); per
// service a ServiceAccount with least-privilege RBAC; the admission rules of package rules as
// ValidatingAdmissionPolicies or Gatekeeper constraints, with exceptions that expire; Vault
// secrets with rotation; API access limits; image trust (Trivy, cosign); and the CIS and KISA
// node checks. Bad arguments are refused before anything is created.
//
//	k8s, _ := kubernetes.NewProvider(ctx, "cluster", &kubernetes.ProviderArgs{Kubeconfig: kubeconfig})
//	hc, err := hardenedcluster.NewHardenedCluster(ctx, "prod", &hardenedcluster.Args{
//		PodSecurityVersion: "v1.37",
//		Teams: []hardenedcluster.Team{{Name: "payments", Namespaces: []string{"payments"}}},
//		Services: []hardenedcluster.Service{{
//			Name: "ledger", Namespace: "payments",
//			Rules: []hardenedcluster.Rule{{Resources: []string{"configmaps"}, Verbs: []string{"get", "watch"}}},
//		}},
//	}, pulumi.Providers(k8s))
package hardenedcluster
