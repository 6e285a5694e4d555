package mesh_test

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/mesh"
	"github.com/kplane/kplane/internal/mockrun"
)

// Istio with strict mTLS: web may call cart, and nothing else may.
func ExampleNewMesh() {
	counts, err := mockrun.Run(func(ctx *pulumi.Context) error {
		_, err := mesh.NewMesh(ctx, "mesh", &mesh.Args{
			Revisions: []mesh.Revision{{Name: "1-29-2", PilotImage: "registry.example.com/istio/pilot@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ProxyImage: "registry.example.com/istio/proxyv2@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}},
			CNI:       mesh.CNI{Image: "registry.example.com/istio/install-cni@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
			Teams:     []mesh.Team{{Namespace: "shop", Services: []mesh.Service{{Name: "web"}, {Name: "cart", Callers: []string{"web"}}}}},
		})
		return err
	})
	fmt.Println(err, counts["kubernetes:security.istio.io/v1:PeerAuthentication"] > 0, counts["kubernetes:security.istio.io/v1:AuthorizationPolicy"] > 0)
	// Output: <nil> true true
}
