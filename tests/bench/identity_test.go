package bench

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/identity/realmsync"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// BenchmarkIdentity: Keycloak's start, the realm sync (create, and a run with nothing to do),
// `pulumi up` of the identity component, and the login round trip (browser flow with PKCE
// against an LDAP-federated user, then one API request with the token), median of 10.
func BenchmarkIdentity(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	d := startDemoIdentity(b, dir)
	defer d.stop()
	report(b, d.keycloakStart.Seconds(), "s/keycloak-start", "Keycloak start to ready (HTTPS, in-memory database)")
	httpClient, args := d.client, d.args
	for _, what := range []string{"realm sync, create", "realm sync, nothing to change"} {
		start := time.Now()
		d.sync(b)
		report(b, time.Since(start).Seconds(), "s/sync", what)
	}

	authn, err := identity.AuthenticationConfiguration(args)
	if err != nil {
		b.Fatal(err)
	}
	authnFile := filepath.Join(dir, "authentication.yaml")
	if err := os.WriteFile(authnFile, []byte(authn), 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := testbed.Start(ctx, "identity", filepath.Join(dir, "cluster"), testbed.Options{NoNodes: true, AuthenticationConfig: authnFile})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	admin, err := c.Clientset()
	if err != nil {
		b.Fatal(err)
	}
	for _, ns := range []string{"a-apps", "b-apps"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	s, err := automation.Open(ctx, automation.Options{Project: "kplane-bench", Stack: "identity", StateDir: dir, Program: func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		_, err = identity.NewRealm(ctx, "sso", &args, pulumi.Provider(k8s))
		return err
	}})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Up(ctx); err != nil {
		b.Fatal(err)
	}
	report(b, time.Since(start).Seconds(), "s/up", "pulumi up of the identity component (realm, RBAC)")

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile = nil, nil, "", ""
	var logins, requests []float64
	for range 10 {
		start = time.Now()
		token, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", identitydemo.AlicePassword, false)
		if err != nil {
			b.Fatal(err)
		}
		logins = append(logins, time.Since(start).Seconds()*1000)
		cfg.BearerToken = token
		cs, err := k8sclient.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		deadline := start.Add(60 * time.Second)
		for {
			// (Forbidden is fine: the token was accepted. The first round waits for the API
			// server to find the realm, created after it started.)
			_, err = cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
			if err == nil || !isUnauthorized(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
			start = time.Now()
		}
		requests = append(requests, time.Since(start).Seconds()*1000)
	}
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	report(b, median(logins), "ms/login", "login round trip (PKCE browser flow, LDAP user), median of 10")
	report(b, median(requests), "ms/request", "API request with the ID token (JWT verified by the API server)")
}

func isUnauthorized(err error) bool { return apierrors.IsUnauthorized(err) }

// demoIdentity is the identity benchmarks' directory and Keycloak: OpenLDAP with the demo
// organisation, Keycloak, and the demo realm over them (args; sync applies it).
type demoIdentity struct {
	ldap          *testbed.LDAP
	kc            *testbed.Keycloak
	client        *http.Client
	args          identity.Args
	keycloakStart time.Duration
}

// startDemoIdentity starts OpenLDAP and Keycloak in dir; the realm is applied by sync.
func startDemoIdentity(b *testing.B, dir string) *demoIdentity {
	ctx := context.Background()
	d := &demoIdentity{}
	var err error
	if d.ldap, err = testbed.StartLDAP(ctx, filepath.Join(dir, "ldap"), "dc=example,dc=org", identitydemo.DemoOrg); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if d.kc, err = testbed.StartKeycloak(ctx, filepath.Join(dir, "keycloak")); err != nil {
		d.ldap.Stop()
		b.Fatal(err)
	}
	d.keycloakStart = time.Since(start)
	if d.client, err = d.kc.HTTPClient(); err != nil {
		d.stop()
		b.Fatal(err)
	}
	d.args = identitydemo.DemoRealm(d.kc.URL, d.kc.CA, d.ldap.URL, d.ldap.BindDN)
	return d
}

// sync applies the realm d.args describes.
func (d *demoIdentity) sync(b *testing.B) {
	c := &realmsync.Client{BaseURL: d.kc.URL, HTTP: d.client, AdminUser: d.kc.AdminUser, AdminPassword: d.kc.AdminPassword}
	if _, err := c.Apply(context.Background(), identity.Representation(d.args), func(string) (string, bool) { return d.ldap.BindPassword, true }); err != nil {
		b.Fatal(err)
	}
}

func (d *demoIdentity) stop() { d.kc.Stop(); d.ldap.Stop() }
