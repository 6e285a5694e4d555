package hardenedcluster_test

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/internal/mockrun"
)

// A team namespace at Pod Security "restricted", a service with a least-privilege role, and the
// admission rules (ValidatingAdmissionPolicies) for images from one registry, pinned by digest.
func ExampleNewHardenedCluster() {
	counts, err := mockrun.Run(func(ctx *pulumi.Context) error {
		_, err := hardenedcluster.NewHardenedCluster(ctx, "prod", &hardenedcluster.Args{
			PodSecurityVersion: "v1.37",
			Teams:              []hardenedcluster.Team{{Name: "payments", Namespaces: []string{"payments"}}},
			Services: []hardenedcluster.Service{{Name: "ledger", Namespace: "payments",
				Rules: []hardenedcluster.Rule{{Resources: []string{"configmaps"}, Verbs: []string{"get", "watch"}}}}},
			Admission: hardenedcluster.AdmissionArgs{AllowedRegistries: []string{"registry.example.com"}},
		})
		return err
	})
	fmt.Println(err, counts["kubernetes:core/v1:Namespace"], counts["kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"])
	// Output: <nil> 1 19
}
