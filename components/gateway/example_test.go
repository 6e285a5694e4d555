package gateway_test

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/internal/mockrun"
)

// Kong in front of one API described by its OpenAPI document: Keycloak tokens required, 60
// requests a minute for the bronze plan.
func ExampleNewGateway() {
	counts, err := mockrun.Run(func(ctx *pulumi.Context) error {
		_, err := gateway.NewGateway(ctx, "gateway", &gateway.Args{
			Engine: "kong", Host: "api.example.com", TLSSecret: "api-tls", SpecsDir: "catalog/testdata",
			Tokens: gateway.Tokens{Issuer: "https://sso.example.com/realms/kplane", PublicKey: "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----\n"},
			Kong:   &gateway.KongInstall{Image: "registry.example.com/kong@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ControllerImage: "registry.example.com/kong-ingress-controller@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
			APIs: []gateway.API{{Name: "orders", Visibility: "external", Owners: []string{"shop"},
				Plans:    []catalog.Plan{{Name: "bronze", RequestsPerMinute: 60}},
				Versions: []gateway.Version{{Version: "v1", Spec: "orders-v1.yaml", Upstream: gateway.Upstream{Service: "orders", Namespace: "shop", Port: 8080}}}}},
		})
		return err
	})
	fmt.Println(err, counts["kubernetes:networking.k8s.io/v1:Ingress"] > 0)
	// Output: <nil> true
}
