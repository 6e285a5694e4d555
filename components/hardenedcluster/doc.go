// Package hardenedcluster is kplane's security baseline for one Kubernetes cluster.
//
// This first slice creates team namespaces that enforce the Pod Security Standards (restricted
// by default, version pinned) and, per service, a ServiceAccount with its own Role/RoleBinding
// (ClusterRole only when asked), refusing wildcards and self-escalating verbs before anything is
// created.
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
