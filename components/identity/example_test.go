package identity_test

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/internal/mockrun"
)

// A Keycloak realm federating an LDAP directory, with one team whose group gets its namespace.
func ExampleNewRealm() {
	counts, err := mockrun.Run(func(ctx *pulumi.Context) error {
		_, err := identity.NewRealm(ctx, "identity", &identity.Args{
			KeycloakURL: "https://sso.example.com",
			Teams:       []identity.Team{{Name: "payments", Namespaces: []string{"payments"}}},
			LDAP: &identity.LDAP{URL: "ldaps://ldap.example.com", BindDN: "cn=keycloak,dc=example,dc=org",
				UsersDN: "ou=people,dc=example,dc=org", GroupsDN: "ou=groups,dc=example,dc=org"},
		})
		return err
	})
	fmt.Println(err, counts["kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"] > 0)
	// Output: <nil> true
}
