// Command identity runs an environment's identity on this machine (what `make identity` and
// `make up` call when the environment's kplane:identity names a loopback Keycloak):
//
//	identity start [--env dev]   OpenLDAP with a demo organisation of the environment's teams,
//	                             Keycloak serving the environment's realm (applied by the realm
//	                             sync), and the API server's AuthenticationConfiguration for it
//	identity stop  [--env dev]
//
// Both services outlive the command; their state is under .state/identity/<env>.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/identity/realmsync"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// state is what a started identity keeps on disk (0600: it holds the local admin passwords).
type state struct {
	KeycloakURL   string `json:"keycloakURL"`
	KeycloakPID   int    `json:"keycloakPID"`
	AdminUser     string `json:"adminUser"`
	AdminPassword string `json:"adminPassword"`
	LDAPURL       string `json:"ldapURL,omitempty"`
	LDAPPID       int    `json:"ldapPID,omitempty"`
	BindPassword  string `json:"bindPassword,omitempty"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "identity: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "start" && args[0] != "stop") {
		return errors.New("usage: identity start|stop [--env dev] [--environments environments] [--state .state/identity]")
	}
	fs := flag.NewFlagSet("identity "+args[0], flag.ContinueOnError)
	env := fs.String("env", "dev", "environment: a folder under --environments")
	envDir := fs.String("environments", "environments", "folder of environments")
	root := fs.String("state", ".state/identity", "folder of the local identities' data")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir := filepath.Join(*root, *env)
	old, _ := load(dir)
	if args[0] == "stop" {
		if old != nil {
			testbed.StopPID(old.KeycloakPID)
			testbed.StopPID(old.LDAPPID)
			fmt.Printf("identity %s stopped\n", *env)
		}
		return nil
	}
	a, err := envArgs(filepath.Join(*envDir, *env, "platform.yaml"))
	if err != nil || a == nil {
		return err
	}
	return start(context.Background(), dir, *a, old)
}

// envArgs reads kplane:identity of an environment; nil when it has none or its Keycloak is not
// on this machine (nothing to start).
func envArgs(path string) (*identity.Args, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Config["kplane:identity"] == nil {
		fmt.Printf("%s declares no kplane:identity: no local identity to start\n", path)
		return nil, nil
	}
	var a identity.Args
	if err := json.Unmarshal(doc.Config["kplane:identity"], &a); err != nil {
		return nil, fmt.Errorf("%s: kplane:identity: %w", path, err)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%s: kplane:identity: %w", path, err)
	}
	if u, _ := url.Parse(a.KeycloakURL); u.Hostname() != "127.0.0.1" || u.Port() == "" {
		fmt.Printf("%s: keycloakURL %s is not on this machine: no local identity to start\n", path, a.KeycloakURL)
		return nil, nil
	}
	return &a, nil
}

func start(ctx context.Context, dir string, a identity.Args, old *state) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	begin := time.Now()
	st := old
	if old == nil || !testbed.Alive(old.KeycloakPID) || (old.LDAPPID != 0) != (a.LDAP != nil) || (a.LDAP != nil && !testbed.Alive(old.LDAPPID)) {
		if old != nil { // partly running: start both afresh
			testbed.StopPID(old.KeycloakPID)
			testbed.StopPID(old.LDAPPID)
		}
		var err error
		if st, err = startServices(ctx, dir, a); err != nil {
			return err
		}
	}
	ca, err := os.ReadFile(filepath.Join(dir, "keycloak", "ca.pem"))
	if err != nil {
		return err
	}
	kc := &testbed.Keycloak{URL: st.KeycloakURL, CA: ca}
	httpClient, err := kc.HTTPClient()
	if err != nil {
		return err
	}
	sync := &realmsync.Client{BaseURL: st.KeycloakURL, HTTP: httpClient, AdminUser: st.AdminUser, AdminPassword: st.AdminPassword}
	report, err := sync.Apply(ctx, identity.Representation(a), func(name string) (string, bool) {
		return st.BindPassword, name == strings.Trim(identity.BindCredentialPlaceholder, "${}") && st.BindPassword != ""
	})
	if err != nil {
		return err
	}
	a.IssuerCA = string(ca)
	authn, err := identity.AuthenticationConfiguration(a)
	if err != nil {
		return err
	}
	authnFile := filepath.Join(dir, "authentication-config.yaml")
	if err := os.WriteFile(authnFile, []byte(authn), 0o600); err != nil {
		return err
	}
	applied := "no change"
	if len(report) > 0 {
		applied = strings.Join(report, "; ")
	}
	fmt.Printf("identity ready in %.1fs: realm %s (%s)\n  ldap:    %s\n  authn:   %s (start the cluster with it: make cluster)\n",
		time.Since(begin).Seconds(), a.Issuer(), applied, st.LDAPURL, authnFile)
	if a.LDAP != nil {
		fmt.Printf("  users:   alice (%s), bob (%s), carol (platform-admins, sets up OTP), erin (auditors), frank (no group); passwords in tests/fixtures/oidc.go\n",
			a.Teams[0].Name, a.Teams[min(1, len(a.Teams)-1)].Name)
	}
	return nil
}

func startServices(ctx context.Context, dir string, a identity.Args) (*state, error) {
	st := &state{}
	if l := a.LDAP; l != nil {
		u, err := url.Parse(l.URL)
		if err != nil || u.Hostname() != "127.0.0.1" || u.Port() == "" {
			return nil, fmt.Errorf("ldap.url %q: the local directory listens on ldap://127.0.0.1:<port>", l.URL)
		}
		base := strings.TrimPrefix(l.UsersDN, "ou=people,")
		if l.UsersDN != "ou=people,"+base || l.GroupsDN != "ou=groups,"+base || l.BindDN != "cn=admin,"+base {
			return nil, fmt.Errorf("ldap: the local directory has usersDN ou=people,<base>, groupsDN ou=groups,<base> and bindDN cn=admin,<base> (got %s, %s, %s)", l.UsersDN, l.GroupsDN, l.BindDN)
		}
		if len(a.Teams) == 0 {
			return nil, errors.New("teams: the demo organisation puts its users in the environment's teams; declare at least one")
		}
		var port int
		fmt.Sscan(u.Port(), &port)
		ldap, err := testbed.StartLDAPWith(ctx, filepath.Join(dir, "ldap"), base, identitydemo.Org(base, a.Teams[0].Name, a.Teams[min(1, len(a.Teams)-1)].Name),
			testbed.ServiceOptions{Port: port, Detached: true})
		if err != nil {
			return nil, err
		}
		st.LDAPURL, st.LDAPPID, st.BindPassword = ldap.URL, ldap.PID(), ldap.BindPassword
	}
	u, _ := url.Parse(a.KeycloakURL)
	var port int
	fmt.Sscan(u.Port(), &port)
	kc, err := testbed.StartKeycloakWith(ctx, filepath.Join(dir, "keycloak"), testbed.ServiceOptions{Port: port, Detached: true})
	if err != nil {
		testbed.StopPID(st.LDAPPID)
		return nil, err
	}
	st.KeycloakURL, st.KeycloakPID, st.AdminUser, st.AdminPassword = kc.URL, kc.PID(), kc.AdminUser, kc.AdminPassword
	raw, _ := json.Marshal(st)
	return st, os.WriteFile(filepath.Join(dir, "identity.json"), raw, 0o600)
}

func load(dir string) (*state, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "identity.json"))
	if err != nil {
		return nil, err
	}
	var st state
	return &st, json.Unmarshal(raw, &st)
}
