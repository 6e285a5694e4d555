package testbed

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// ArgoCD is Argo CD's own controllers (the tool cache's build of its release) running as local
// processes against a management cluster, as its Deployments would: the repo-server (Git and
// Helm, with the tool cache's helm on PATH), the application controller and the ApplicationSet
// controller, sharing an in-process Redis (miniredis, what Argo CD's core mode runs too).
type ArgoCD struct {
	Namespace string
	Dir       string
	// ServerURL is its API server's (WithServer).
	ServerURL string
	redis     *miniredis.Miniredis
	procs     []*proc
}

// ArgoCDOptions: TrustedCAs are Git servers' CAs by host (what argocd-tls-certs-cm holds);
// WithoutApplicationSets runs no ApplicationSet controller (a pull member's Argo CD needs none).
type ArgoCDOptions struct {
	TrustedCAs             map[string][]byte
	WithoutApplicationSets bool
	// WithServer also runs Argo CD's API server (plain HTTP on loopback, as behind an ingress
	// that ends TLS): ArgoCD.ServerURL.
	WithServer bool
}

// InstallArgoCD puts into c what Argo CD's installation leaves there for its controllers: its
// CRDs (the release's own, from the tool cache; established), the namespace, argocd-cm (with
// what kplane's fleet needs: resource.respectRBAC normal, as members let Argo CD read their
// render's kinds only, and impersonation, as it syncs as the AppProjects' deployers; and a 10 s
// reconciliation for tests), argocd-secret and the API server's Deployment.
func InstallArgoCD(ctx context.Context, c *Cluster) error {
	bin, err := Binary("argocd")
	if err != nil {
		return err
	}
	// The release's CRDs, kept beside the binary by tools/build.sh.
	if err := c.kubectl(ctx, nil, "apply", "--server-side", "-f", filepath.Join(filepath.Dir(bin), "argocd-crds.yaml")); err != nil {
		return err
	}
	// kubectl wait fails on a CRD the API server has not given a status yet: ask again.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		err := c.kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=30s",
			"crd/applications.argoproj.io", "crd/applicationsets.argoproj.io", "crd/appprojects.argoproj.io")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
	}
	key := make([]byte, 32) // server.secretkey, which Argo CD's API server would generate
	if _, err := rand.Read(key); err != nil {
		return err
	}
	objects := "apiVersion: v1\nkind: Namespace\nmetadata: {name: argocd}\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm, namespace: argocd, labels: {app.kubernetes.io/part-of: argocd}}\n" +
		"data: {resource.respectRBAC: normal, application.sync.impersonation.enabled: \"true\", timeout.reconciliation: 10s}\n" +
		"---\napiVersion: v1\nkind: Secret\nmetadata: {name: argocd-secret, namespace: argocd, labels: {app.kubernetes.io/part-of: argocd}}\n" +
		"stringData: {server.secretkey: " + base64.StdEncoding.EncodeToString(key) + "}\n" +
		// The API server's Deployment as the release's install.yaml declares it (KWOK runs its
		// pod; StartArgoCD runs the server itself): kplane rolls it when the login changes.
		"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: argocd-server, namespace: argocd, labels: {app.kubernetes.io/part-of: argocd}}\n" +
		"spec:\n  selector: {matchLabels: {app.kubernetes.io/name: argocd-server}}\n" +
		"  template:\n    metadata: {labels: {app.kubernetes.io/name: argocd-server}}\n" +
		"    spec: {containers: [{name: argocd-server, image: \"quay.io/argoproj/argocd:v3.6.1\", args: [/usr/local/bin/argocd-server]}]}\n"
	return c.kubectl(ctx, strings.NewReader(objects), "apply", "--server-side", "-f", "-")
}

// StartArgoCD installs Argo CD into c (InstallArgoCD) and starts its controllers; dir holds
// their logs and working folders. Stop ends them.
func StartArgoCD(ctx context.Context, c *Cluster, dir string, o ArgoCDOptions) (*ArgoCD, error) {
	if err := InstallArgoCD(ctx, c); err != nil {
		return nil, err
	}
	bin, err := Binary("argocd")
	if err != nil {
		return nil, err
	}
	helm, err := Binary("helm")
	if err != nil {
		return nil, err
	}
	tls := filepath.Join(dir, "tls")
	for _, d := range []string{filepath.Join(dir, "bin"), tls, filepath.Join(dir, "tmp"), filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	for host, ca := range o.TrustedCAs { // argocd-tls-certs-cm, as mounted into the repo-server
		if err := os.WriteFile(filepath.Join(tls, host), ca, 0o600); err != nil {
			return nil, err
		}
	}
	ports, err := freePort(8)
	if err != nil {
		return nil, err
	}
	a := &ArgoCD{Namespace: "argocd", Dir: dir}
	if a.redis, err = miniredis.Run(); err != nil { // from here on, errors Stop what was started
		return nil, err
	}
	port := func(i int) string { return fmt.Sprint(ports + i) }
	// helm and git-verify-wrapper.sh, which the repo-server runs, are kept beside argocd.
	env := []string{"PATH=" + filepath.Dir(bin) + ":" + filepath.Dir(helm) + ":" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home"), "TMPDIR=" + filepath.Join(dir, "tmp"),
		"ARGOCD_TLS_DATA_PATH=" + tls, "ARGOCD_GPG_ENABLED=false", "ARGOCD_SSH_DATA_PATH=" + filepath.Join(dir, "ssh"),
		"KUBECONFIG=" + c.Kubeconfig} // the ApplicationSet controller's client reads only this (controller-runtime)
	common := []string{"--redis", a.redis.Addr(), "--logformat", "text"}
	start := argoCDComponents(c, a, o, common, port)
	for _, s := range start {
		// Argo CD's one binary is every component; it picks by the name it was started as.
		link := filepath.Join(dir, "bin", s.name)
		if err := os.Symlink(bin, link); err != nil && !os.IsExist(err) {
			a.Stop()
			return nil, err
		}
		cmd := exec.Command(link, s.args...)
		cmd.Dir, cmd.Env = dir, env
		p, err := startProc(s.name, filepath.Join(dir, s.name+".log"), cmd, false)
		if err != nil {
			a.Stop()
			return nil, err
		}
		a.procs = append(a.procs, p)
		if err := p.waitReady(ctx, 90*time.Second, 200*time.Millisecond, httpOK(http.DefaultClient, s.ready)); err != nil {
			a.Stop()
			return nil, err
		}
	}
	return a, nil
}

// Logs is the end of every controller's log, for failure messages.
func (a *ArgoCD) Logs(n int) string {
	var b strings.Builder
	for _, p := range a.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", p.name, lastLines(p.log, n))
	}
	return b.String()
}

// Stop ends the controllers and Redis.
func (a *ArgoCD) Stop() {
	for _, p := range a.procs {
		p.stop()
	}
	a.procs = nil
	if a.redis != nil {
		a.redis.Close()
	}
}

// argoCDComponent is one of Argo CD's programs: its name, arguments and readiness URL.
type argoCDComponent struct {
	name  string
	args  []string
	ready string
}

// argoCDComponents are the programs StartArgoCD runs for o (port(i): its i-th free port).
func argoCDComponents(c *Cluster, a *ArgoCD, o ArgoCDOptions, common []string, port func(int) string) []argoCDComponent {
	repo := "127.0.0.1:" + port(0)
	start := []argoCDComponent{
		// gRPC over TLS with the repo-server's own certificate, as installed by default.
		{"argocd-repo-server", append([]string{"--address", "127.0.0.1", "--port", port(0), "--metrics-address", "127.0.0.1", "--metrics-port", port(1)},
			common...), "http://127.0.0.1:" + port(1) + "/healthz"},
		{"argocd-application-controller", append([]string{"--kubeconfig", c.Kubeconfig, "--namespace", a.Namespace, "--repo-server", repo,
			"--metrics-port", port(2), "--app-resync", "10", "--self-heal-timeout-seconds", "2",
			"--status-processors", "4", "--operation-processors", "4"}, common...), "http://127.0.0.1:" + port(2) + "/healthz"},
		{"argocd-applicationset-controller", []string{"--kubeconfig", c.Kubeconfig, "--namespace", a.Namespace, "--argocd-repo-server", repo,
			"--metrics-addr", "127.0.0.1:" + port(3), "--probe-addr", "127.0.0.1:" + port(4),
			"--webhook-addr", "127.0.0.1:" + port(5), "--enable-scm-providers=false", "--logformat", "text"}, "http://127.0.0.1:" + port(3) + "/metrics"},
	}
	if o.WithoutApplicationSets {
		start = start[:2]
	}
	if o.WithServer {
		a.ServerURL = "http://127.0.0.1:" + port(6)
		start = append(start, argoCDComponent{"argocd-server", append([]string{"--kubeconfig", c.Kubeconfig, "--namespace", a.Namespace, "--repo-server", repo, "--insecure",
			"--address", "127.0.0.1", "--port", port(6), "--metrics-address", "127.0.0.1", "--metrics-port", port(7), "--staticassets", filepath.Join(a.Dir, "tmp")},
			common...), a.ServerURL + "/healthz"})
	}
	return start
}
