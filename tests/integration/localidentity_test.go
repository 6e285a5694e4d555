package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// TestLocalIdentity: what `make up` does for an environment whose realm is on this machine —
// `identity start` reads environments/dev's kplane:identity (on other loopback ports here),
// starts OpenLDAP with the demo organisation of its teams and Keycloak with its realm, and
// writes the AuthenticationConfiguration a cluster then starts with; a demo user of the first
// team logs in and the API server knows her. `identity stop` ends both services.
func TestLocalIdentity(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dev, err := os.ReadFile("../../environments/dev/platform.yaml")
	require.NoError(t, err)
	envs, state := t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(envs, "dev"), 0o700))
	kcPort, err := testbed.FreePorts(3)
	require.NoError(t, err)
	ldapPort, err := testbed.FreePorts(1)
	require.NoError(t, err)
	cfg := strings.NewReplacer("https://127.0.0.1:8443", fmt.Sprintf("https://127.0.0.1:%d", kcPort), "ldap://127.0.0.1:3389", fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort)).Replace(string(dev))
	require.NotEqual(t, string(dev), cfg, "environments/dev names a local Keycloak and OpenLDAP")
	require.NoError(t, os.WriteFile(filepath.Join(envs, "dev", "platform.yaml"), []byte(cfg), 0o600))

	bin := buildCommand(t, "github.com/kplane/kplane/tests/testbed/cmd/identity")
	identity := func(verb string) string {
		out, err := exec.Command(bin, verb, "--env", "dev", "--environments", envs, "--state", state).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	t.Cleanup(func() { identity("stop") })
	out := identity("start")
	t.Log(out)
	assert.Contains(t, out, "alice (payments), bob (web)")
	assert.Contains(t, identity("start"), "(no change)", "a second start finds both running and the realm as declared")

	c, err := testbed.Start(ctx, "local-identity", t.TempDir(), testbed.Options{NoNodes: true, AuthenticationConfig: filepath.Join(state, "dev", "authentication-config.yaml")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	ca, err := os.ReadFile(filepath.Join(state, "dev", "keycloak", "ca.pem"))
	require.NoError(t, err)
	httpClient, err := (&testbed.Keycloak{CA: ca}).HTTPClient()
	require.NoError(t, err)
	issuer := fmt.Sprintf("https://127.0.0.1:%d/realms/kplane", kcPort)
	token, err := fixtures.OIDCLogin(httpClient, issuer, "kubernetes", "http://127.0.0.1:8000", "alice", fixtures.AlicePassword, false)
	require.NoError(t, err)
	assert.Contains(t, fixtures.Claims(token), `"groups":["payments"]`)
	var review *authnv1.SelfSubjectReview
	require.Eventually(t, func() bool {
		review, err = asUser(t, c.Kubeconfig, token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return !apierrors.IsUnauthorized(err)
	}, 60*time.Second, 500*time.Millisecond, "the cluster trusts the local realm")
	require.NoError(t, err)
	assert.Equal(t, "oidc:alice", review.Status.UserInfo.Username)
	assert.Contains(t, review.Status.UserInfo.Groups, "oidc:payments")
}
