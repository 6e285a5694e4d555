package fleetmember_test

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/internal/mockrun"
)

// A member cluster registered with the management cluster's Argo CD: its cluster entry with the
// member's labels, and an account on the member whose rights are what its render holds.
func ExampleNewMember() {
	counts, err := mockrun.RunWith(func(ctx *pulumi.Context) error {
		var member, management pulumi.ProviderResourceState // the two clusters' Kubernetes providers
		if err := ctx.RegisterResource("pulumi:providers:kubernetes", "seoul", nil, &member); err != nil {
			return err
		}
		if err := ctx.RegisterResource("pulumi:providers:kubernetes", "management", nil, &management); err != nil {
			return err
		}
		_, err := fleetmember.NewMember(ctx, "seoul", &fleetmember.MemberArgs{
			Name: "seoul", Environment: "prod", Server: "https://10.0.0.1:6443",
			CAData: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
			Labels: map[string]string{"region": "kr-central"},
			Rendered: &fleetmember.Rendered{Environment: "prod", Cluster: "seoul", // from kplane-fleet render
				Platform: []fleetmember.Kind{{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespaced: true}}},
			Member: &member, Management: &management,
		})
		return err
	}, func(typeToken, name string) resource.PropertyMap { // the member's API server issues the deployer's token
		if typeToken == "kubernetes:core/v1:Secret" && strings.HasSuffix(name, "-token") {
			return resource.PropertyMap{"data": resource.NewObjectProperty(resource.PropertyMap{"token": resource.NewStringProperty("dG9rZW4=")})}
		}
		return nil
	})
	fmt.Println(err, counts["kubernetes:core/v1:Secret"] > 0)
	// Output: <nil> true
}
