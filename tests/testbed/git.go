package testbed

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// GitServer is a real Git server on loopback: git's own smart-HTTP backend (`git http-backend`,
// what GitLab and cgit put behind their web servers) run by Go's CGI handler, over TLS with a
// certificate of its own CA, read-only. Argo CD's repo-server clones the fleet's charts from it.
type GitServer struct {
	// URL is https://127.0.0.1:<port>; a repository is URL/<name>.git.
	URL string
	// CA signed the server's certificate (PEM).
	CA   []byte
	root string
}

// StartGitServer serves the bare repositories under dir until the test ends.
func StartGitServer(t testing.TB, dir string) *GitServer {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git server: git is not installed (tools/build.sh installs it): %v", err)
	}
	root := filepath.Join(dir, "repositories")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{Path: gitBin, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + dir}}
	url, ca := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Fetches only: pushes go through Push, as a reviewed merge would.
		if r.URL.Query().Get("service") == "git-receive-pack" || strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			http.Error(w, "read-only", http.StatusForbidden)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	return &GitServer{URL: url, CA: ca, root: root}
}

// serveTLS serves handler on a free loopback port over TLS, with a certificate for 127.0.0.1 from
// a CA of its own, until the test ends; it returns https://127.0.0.1:<port> and the CA (PEM).
func serveTLS(t testing.TB, handler http.Handler) (string, []byte) {
	t.Helper()
	ca, cert, key, err := servingCert()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + l.Addr().String(), ca
}

// Push commits files (path -> content) as the whole tree of repository name on main, tags the
// commit, and returns the repository's URL. Pushing again replaces the tree with a new commit.
func (g *GitServer) Push(t testing.TB, name, tag string, files map[string]string) string {
	t.Helper()
	bare := filepath.Join(g.root, name+".git")
	work := filepath.Join(filepath.Dir(g.root), "work-"+name)
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=kplane", "GIT_AUTHOR_EMAIL=kplane@example.com",
			"GIT_COMMITTER_NAME=kplane", "GIT_COMMITTER_EMAIL=kplane@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+filepath.Dir(g.root))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := os.Stat(bare); os.IsNotExist(err) {
		git(g.root, "init", "--quiet", "--bare", "--initial-branch=main", bare)
		git(filepath.Dir(g.root), "clone", "--quiet", bare, work)
		git(work, "checkout", "--quiet", "-b", "main")
	}
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(work, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for path, content := range files {
		p := filepath.Join(work, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	git(work, "add", "--all")
	git(work, "commit", "--quiet", "--allow-empty", "-m", fmt.Sprintf("%s %s", name, tag))
	git(work, "tag", "--force", tag)
	git(work, "push", "--quiet", "--force", "origin", "main", "refs/tags/"+tag)
	return g.URL + "/" + name + ".git"
}
