// Command store runs an environment's backup store and Velero on this machine (what `make up`
// calls when the environment's kplane:backup.storage.url is a loopback address):
//
//	store start [--env dev] --kubeconfig PATH   SeaweedFS serving S3 on the environment's port
//	                                            with the bucket, Velero's CRDs and namespace in the
//	                                            cluster, the credentials Secret the environment
//	                                            names, and a Velero server against the cluster
//	store stop  [--env dev]
//
// Both servers outlive the command; their data and the generated key are under .state/store/<env>
// (0600).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplane/kplane/components/backup"
	composed "github.com/kplane/kplane/components/platform"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/stacks/platform"
	"github.com/kplane/kplane/tests/testbed"
)

// state is what a started store keeps on disk.
type state struct {
	URL       string `json:"url"`
	StorePID  int    `json:"storePID"`
	VeleroPID int    `json:"veleroPID"`
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "store: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "start" && args[0] != "stop") {
		return errors.New("usage: store start|stop [--env dev] [--kubeconfig PATH] [--environments environments] [--state .state/store]")
	}
	fs := flag.NewFlagSet("store "+args[0], flag.ContinueOnError)
	env := fs.String("env", "dev", "environment: a folder under --environments")
	envDir := fs.String("environments", "environments", "folder of environments")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the environment's local cluster")
	root := fs.String("state", ".state/store", "folder of the local stores' data")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Join(*root, *env)) // Velero runs there and finds its plugins by path
	if err != nil {
		return err
	}
	old, _ := load(dir)
	if old != nil {
		testbed.StopPID(old.VeleroPID) // restarted below: it follows the cluster it was started for
	}
	if args[0] == "stop" {
		if old != nil {
			testbed.StopPID(old.StorePID)
			fmt.Printf("store %s stopped\n", *env)
		}
		return nil
	}
	b, err := envBackup(*envDir, *env)
	if err != nil || b == nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig: the local cluster Velero works on")
	}
	abs, err := filepath.Abs(*kubeconfig) // Velero runs in the store's folder
	if err != nil {
		return err
	}
	return start(context.Background(), dir, abs, b, old)
}

// envBackup reads kplane:backup of an environment; nil when it has none or its store is not on
// this machine (nothing to start).
func envBackup(dir, env string) (*composed.Backup, error) {
	cfg, err := automation.LoadEnvironment(dir, env, "platform")
	if err != nil {
		return nil, err
	}
	raw := map[string]string{}
	for k, v := range cfg {
		raw[k] = v.Value
	}
	c, _, err := platform.FromConfig(raw)
	if c == nil || err != nil && c.Platform.Backup == nil {
		return nil, err
	}
	if c.Platform.Backup == nil {
		fmt.Printf("environment %s declares no kplane:backup: no local store to start\n", env)
		return nil, nil
	}
	if u, _ := url.Parse(c.Platform.Backup.Storage.URL); u == nil || u.Hostname() != "127.0.0.1" || u.Port() == "" {
		fmt.Printf("environment %s: the backup store %q is not on this machine: no local store to start\n", env, c.Platform.Backup.Storage.URL)
		return nil, nil
	}
	return c.Platform.Backup, nil
}

func start(ctx context.Context, dir, kubeconfig string, b *composed.Backup, old *state) error {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return err
	}
	u, _ := url.Parse(b.Storage.URL)
	port, _ := strconv.Atoi(u.Port())
	st := old
	if old == nil || !testbed.Alive(old.StorePID) || old.URL != b.Storage.URL {
		if old != nil {
			testbed.StopPID(old.StorePID)
		}
		st = &state{URL: b.Storage.URL, AccessKey: "kplane-" + random(4), SecretKey: random(20)}
		s, err := testbed.LaunchSeaweedFS(testbed.SeaweedFSOptions{Dir: filepath.Join(dir, "data"), AccessKey: st.AccessKey, SecretKey: st.SecretKey,
			Flags: backup.NFSStoreFlags(b.Storage.Bucket), S3Port: port, Detached: true})
		if err != nil {
			return fmt.Errorf("S3 store on %s: %w", b.Storage.URL, err)
		}
		st.StorePID = s.PID()
		if err := save(dir, st); err != nil { // before anything else can fail: stop finds it
			return err
		}
	}
	c := &testbed.Cluster{Kubeconfig: kubeconfig}
	if err := testbed.InstallVelero(ctx, c); err != nil {
		return err
	}
	if err := credentials(ctx, c, b, st); err != nil {
		return err
	}
	v, err := testbed.LaunchVelero(ctx, c, dir, true)
	if err != nil {
		return err
	}
	st.VeleroPID = v.PID()
	if err := save(dir, st); err != nil {
		return err
	}
	fmt.Printf("store: S3 %s (bucket %s), Velero in namespace velero (log %s)\n", st.URL, b.Storage.Bucket, v.Log)
	return nil
}

// credentials puts the store's key into the Secret the environment names (key "cloud", an AWS
// credentials file), as the platform's secret store would deliver it.
func credentials(ctx context.Context, c *testbed.Cluster, b *composed.Backup, st *state) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: b.Storage.CredentialsSecret},
		StringData: map[string]string{"cloud": fmt.Sprintf("[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n", st.AccessKey, st.SecretKey)}}
	ns := b.Namespace
	if ns == "" {
		ns = "velero"
	}
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = cs.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{})
	}
	return err
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func save(dir string, st *state) error {
	raw, _ := json.Marshal(st)
	return os.WriteFile(filepath.Join(dir, "store.json"), raw, 0o600)
}

func load(dir string) (*state, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "store.json"))
	if err != nil {
		return nil, err
	}
	var st state
	return &st, json.Unmarshal(raw, &st)
}
