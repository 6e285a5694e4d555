package platform_test

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/mesh"
	"github.com/kplane/kplane/components/platform"
	"github.com/kplane/kplane/internal/mockrun"
)

// A team's namespace, hardened, in the mesh and in the nightly backup, its people logging in
// through the realm: four capabilities from one set of arguments, wired to each other.
func ExampleNewPlatform() {
	digest := "@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	counts, err := mockrun.Run(func(ctx *pulumi.Context) error {
		_, err := platform.NewPlatform(ctx, "prod", &platform.Args{
			Security: hardenedcluster.Args{
				Teams:    []hardenedcluster.Team{{Name: "payments", Namespaces: []string{"payments"}}},
				Services: []hardenedcluster.Service{{Name: "ledger", Namespace: "payments"}},
			},
			Identity: &identity.Args{KeycloakURL: "https://sso.example.com", Teams: []identity.Team{{Name: "payments", Namespaces: []string{"payments"}}}},
			Mesh: &platform.Mesh{Args: mesh.Args{Revisions: []mesh.Revision{{Name: "1-29-2",
				PilotImage: "registry.example.com/istio/pilot" + digest, ProxyImage: "registry.example.com/istio/proxyv2" + digest}},
				CNI: mesh.CNI{Image: "registry.example.com/istio/install-cni" + digest}}},
			Backup: &platform.Backup{VeleroArgs: backup.VeleroArgs{Storage: backup.Storage{Bucket: "backups", CredentialsSecret: "velero-s3"}}},
		})
		return err
	})
	fmt.Println(err, counts["kplane:index:Platform"], counts["kubernetes:velero.io/v1:Schedule"], counts["kubernetes:security.istio.io/v1:AuthorizationPolicy"] > 0)
	// Output: <nil> 1 2 true
}
