package integration

import (
	"context"
	"fmt"
	"net/http"
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

	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// TestLocalIdentity: what `make up` does for an environment whose realm is on this machine —
// `identity start` reads environments/dev's kplane:identity (on other loopback ports here),
// starts OpenLDAP with the demo organisation of its teams and Keycloak with its realm, and
// writes the AuthenticationConfiguration a cluster then starts with; a demo user of the first
// team logs in and the API server knows her. `identity stop` ends both services.
func TestLocalIdentity(t *testing.T) {
	integration(t)
	ctx := context.Background()
	li := startLocalIdentity(t, "")
	assert.Contains(t, li.out, "alice (payments), bob (web)")
	assert.Contains(t, li.identity("start"), "(no change)", "a second start finds both running and the realm as declared")

	c, err := testbed.Start(ctx, "local-identity", t.TempDir(), testbed.Options{NoNodes: true, AuthenticationConfig: filepath.Join(li.state, "dev", "authentication-config.yaml")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	token, err := identitydemo.OIDCLogin(li.client, li.issuer, "kubernetes", "http://127.0.0.1:8000", "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	assert.Contains(t, identitydemo.Claims(token), `"groups":["payments"]`)
	var review *authnv1.SelfSubjectReview
	require.Eventually(t, func() bool {
		review, err = asUser(t, c.Kubeconfig, token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return !apierrors.IsUnauthorized(err)
	}, 60*time.Second, 500*time.Millisecond, "the cluster trusts the local realm")
	require.NoError(t, err)
	assert.Equal(t, "oidc:alice", review.Status.UserInfo.Username)
	assert.Contains(t, review.Status.UserInfo.Groups, "oidc:payments")
}

// localIdentity is environments/dev's identity started on this machine for a test.
type localIdentity struct {
	issuer   string
	client   *http.Client
	ca       []byte
	state    string
	out      string // what the first start printed
	identity func(verb string) string
}

// startLocalIdentity does what `make up` does for an environment whose realm is on this machine
// — `identity start` with environments/dev's kplane:identity (on other loopback ports here, plus
// the tool entries of tool, YAML list items) starts OpenLDAP with the demo organisation and
// Keycloak with the realm — and stops both when the test ends.
func startLocalIdentity(t *testing.T, tool string) *localIdentity {
	t.Helper()
	dev, err := os.ReadFile("../../environments/dev/platform.yaml")
	require.NoError(t, err)
	envs, state := t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(envs, "dev"), 0o700))
	kcPort, err := testbed.FreePorts(3)
	require.NoError(t, err)
	ldapPort, err := testbed.FreePorts(1)
	require.NoError(t, err)
	cfg := strings.NewReplacer("https://127.0.0.1:8443", fmt.Sprintf("https://127.0.0.1:%d", kcPort), "ldap://127.0.0.1:3389", fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort),
		"\n    tools:\n", "\n    tools:\n"+tool).Replace(string(dev))
	require.NotEqual(t, string(dev), cfg, "environments/dev names a local Keycloak and OpenLDAP")
	require.NoError(t, os.WriteFile(filepath.Join(envs, "dev", "platform.yaml"), []byte(cfg), 0o600))

	bin := buildCommand(t, "github.com/kplane/kplane/tests/testbed/cmd/identity")
	li := &localIdentity{state: state, issuer: fmt.Sprintf("https://127.0.0.1:%d/realms/kplane", kcPort)}
	li.identity = func(verb string) string {
		out, err := exec.Command(bin, verb, "--env", "dev", "--environments", envs, "--state", state).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	t.Cleanup(func() { li.identity("stop") })
	li.out = li.identity("start")
	t.Log(li.out)
	li.ca, err = os.ReadFile(filepath.Join(state, "dev", "keycloak", "ca.pem"))
	require.NoError(t, err)
	li.client, err = (&testbed.Keycloak{CA: li.ca}).HTTPClient()
	require.NoError(t, err)
	return li
}
