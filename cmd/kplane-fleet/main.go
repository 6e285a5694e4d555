// Command kplane-fleet runs the fleet of an environment: register -> health check -> sync.
//
//	kplane-fleet up      --env ENV                  register every cluster (pulumi up of the fleet stack; with
//	                                                rancher, once Rancher issued new members' registration,
//	                                                a second up applies it on them)
//	kplane-fleet health  --env ENV [--json] [--watch 10s] [--metrics :9100]
//	kplane-fleet rollout --env ENV [--batch N] [--resume] [--sync-timeout 10m]
//	                                                enable the platform wave by wave, healthy clusters only;
//	                                                each wave waits for Argo CD to sync it (Synced and Healthy)
//	kplane-fleet run     --env ENV [--batch N] [--resume]   up, then rollout
//	kplane-fleet down    --env ENV                  deregister every cluster (pulumi destroy)
//	kplane-fleet render  --env ENV [--out rendered] [--cluster NAME] [--check] [--charts DIR]
//	                                                render each member's composed platform (its environment
//	                                                file with its values over it) into rendered/ENV/<cluster>:
//	                                                what Argo CD syncs once committed; --check fails when
//	                                                what is committed differs from a fresh render
//	kplane-fleet prometheus --env ENV --out DIR [--metrics HOST:PORT] [--interval 30s]
//	                                                the management Prometheus's configuration: it scrapes
//	                                                the health watch and federates the members' Prometheus;
//	                                                with kplane's fleet rules and Grafana dashboard
//
// The environment is environments/<env>/fleet.yaml (kplane:fleet). It exits non-zero when a wave
// stops or a cluster is unhealthy (health without --watch).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/fleetmember/monitoring"
	"github.com/kplane/kplane/components/fleetmember/rollout"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/internal/cli"
	"github.com/kplane/kplane/stacks/fleet"
)

const usage = `usage: kplane-fleet render|up|health|rollout|run|down|prometheus --env ENV [flags] (kplane-fleet <command> -h for the flags)
  down deregisters every cluster of the environment: environments other than dev need --yes (or the name typed at a terminal)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := cli.Run("kplane-fleet", usage, os.Args[1:], os.Stdout, os.Stderr, func(args []string) error { return run(ctx, args) })
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) error {
	verbs := []string{"render", "up", "health", "rollout", "run", "down", "prometheus"}
	if len(args) == 0 || !slices.Contains(verbs, args[0]) {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	env := fs.String("env", "", "the environment (environments/<env>/fleet.yaml)")
	envs := fs.String("environments", "environments", "the environments folder")
	state := fs.String("state", ".state", "local state folder (Pulumi backend, rollout progress)")
	batch := fs.Int("batch", 1, "rollout: clusters per wave")
	resume := fs.Bool("resume", false, "rollout: continue after the clusters already enabled")
	asJSON := fs.Bool("json", false, "health: JSON instead of a table")
	yes := fs.Bool("yes", false, "down: deregister without asking (environments other than dev ask, or need this)")
	watch := fs.Duration("watch", 0, "health: check again at this interval until interrupted")
	metrics := fs.String("metrics", "", "health: serve Prometheus metrics on this address (with --watch); prometheus: the address the management Prometheus scrapes them at")
	out := fs.String("out", "", "render: the renders' root (default: the platform's path, rendered); prometheus: the folder to write prometheus.yml, the rules and the dashboard into")
	interval := fs.Duration("interval", 30*time.Second, "prometheus: scrape and rule evaluation interval")
	promURL := fs.String("prometheus-url", "http://127.0.0.1:9090", "prometheus: the management Prometheus as the fleet Grafana reaches it (its data source)")
	only := fs.String("cluster", "", "render: this member only")
	check := fs.Bool("check", false, "render: render into a temporary folder and fail if the committed render differs")
	charts := fs.String("charts", os.Getenv("KPLANE_CHARTS"), "render: the folder of unpacked official charts (kplane:charts)")
	timeout := fs.Duration("timeout", 5*time.Second, "health check timeout per cluster")
	rancherTimeout := fs.Duration("rancher-timeout", 5*time.Minute, "up: how long to wait for Rancher to issue a new member's registration")
	syncTimeout := fs.Duration("sync-timeout", 10*time.Minute, "rollout: how long a wave waits for Argo CD to sync its clusters' Applications (0: do not wait)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfgMap, err := automation.LoadEnvironment(*envs, *env, "fleet")
	if err != nil {
		return err
	}
	raw, ok := cfgMap["kplane:fleet"]
	if !ok {
		return fmt.Errorf("environments/%s/fleet.yaml: kplane:fleet is missing (the clusters of the fleet)", *env)
	}
	c, err := fleet.Parse(raw.Value)
	if err != nil {
		return err
	}
	stack := func() (*automation.Stack, error) {
		return automation.Open(ctx, automation.Options{Project: fleet.Project, Stack: *env, Program: fleet.Program, Config: cfgMap, StateDir: *state, Output: os.Stderr})
	}
	runRollout := func() error {
		kc, err := clientcmd.BuildConfigFromFlags("", c.Management)
		if err != nil {
			return fmt.Errorf("management kubeconfig: %w", err)
		}
		mgmt, err := kubernetes.NewForConfig(kc)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*state, 0o700); err != nil {
			return err
		}
		r := &rollout.Rollout{Clusters: c.Members(), Batch: *batch, Management: mgmt, ArgoCDNamespace: c.ArgoCDNamespace, Timeout: *timeout,
			StateFile: filepath.Join(*state, "fleet-"+*env+"-rollout.json"), Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }}
		if c.Platform != nil {
			r.ApplicationSets = c.Platform.ApplicationSets()
		}
		if c.Platform != nil && *syncTimeout > 0 { // health-gated: the next wave waits for this one's sync
			dyn, err := dynamic.NewForConfig(kc)
			if err != nil {
				return err
			}
			r.Sync = &rollout.SyncGate{Applications: dyn, Timeout: *syncTimeout}
		}
		s, err := r.Run(ctx, *resume)
		fmt.Printf("enabled: %d of %d clusters\n", len(s.Enabled), len(c.Clusters))
		return err
	}
	switch args[0] {
	case "up", "run":
		s, err := stack()
		if err != nil {
			return err
		}
		start := time.Now()
		res, err := s.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("registered %d clusters in %.1f s\n", len(c.Clusters), time.Since(start).Seconds())
		if pending, _ := res.Outputs[fleet.RancherPendingOutput].Value.([]any); len(pending) > 0 {
			// Rancher issues their registration once it has imported them: wait, then apply it.
			if err := waitRancher(ctx, c, pending, *rancherTimeout); err != nil {
				return err
			}
			if _, err := s.Up(ctx); err != nil {
				return err
			}
			fmt.Printf("applied Rancher's registration on %d clusters in %.1f s\n", len(pending), time.Since(start).Seconds())
		}
		if args[0] == "run" {
			return runRollout()
		}
		return nil
	case "down":
		var names []string
		for _, cl := range c.Clusters {
			names = append(names, cl.Name)
		}
		if err := cli.ConfirmDestroy("kplane-fleet down", *env, "its clusters ("+strings.Join(names, ", ")+") and the management cluster", *yes, os.Stdin, os.Stdout); err != nil {
			return err
		}
		s, err := stack()
		if err != nil {
			return err
		}
		_, err = s.Destroy(ctx)
		return err
	case "rollout":
		return runRollout()
	case "prometheus":
		return writePrometheus(c, *out, *metrics, *promURL, *interval)
	case "render":
		return render(ctx, c, *envs, *env, cmp.Or(*out, c.RenderedPath()), *only, *charts, *check)
	}
	// health
	var metricsOut *rollout.Metrics
	if *metrics != "" {
		metricsOut = rollout.NewMetrics()
		srv, err := metricsOut.Serve(*metrics)
		if err != nil {
			return fmt.Errorf("--metrics %s: %w", *metrics, err)
		}
		defer srv.Close()
	}
	apps, err := applications(c)
	if err != nil {
		return err
	}
	for {
		last := rollout.ObserveAll(ctx, c.Members(), *timeout)
		if metricsOut != nil {
			metricsOut.Update(last, apps(ctx))
		}
		if *asJSON {
			err = rollout.WriteJSON(os.Stdout, last)
		} else {
			fmt.Printf("%s\n", time.Now().Format(time.RFC3339))
			err = rollout.WriteTable(os.Stdout, last)
		}
		if err != nil {
			return err
		}
		if *watch == 0 {
			for _, h := range last {
				if !h.Healthy {
					return fmt.Errorf("cluster %s is unhealthy: %s", h.Cluster, h.Reason)
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}

// applications reads the state of every member's expected Argo CD Applications (none without a
// platform): on the management cluster for push members, on the member for pull ones.
func applications(c *fleet.Config) (func(context.Context) []rollout.AppStatus, error) {
	if c.Platform == nil {
		return func(context.Context) []rollout.AppStatus { return nil }, nil
	}
	var gate rollout.SyncGate
	if slices.ContainsFunc(c.Members(), func(m rollout.Cluster) bool { return !m.Pull }) {
		kc, err := clientcmd.BuildConfigFromFlags("", c.Management)
		if err != nil {
			return nil, fmt.Errorf("management kubeconfig: %w", err)
		}
		kc.Timeout = 10 * time.Second
		if gate.Applications, err = dynamic.NewForConfig(kc); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) []rollout.AppStatus {
		return gate.Look(ctx, cmp.Or(c.ArgoCDNamespace, "argocd"), c.Platform.ApplicationSets(), c.Members())
	}, nil
}

// waitRancher returns once Rancher has issued the registration of every cluster named.
func waitRancher(ctx context.Context, c *fleet.Config, clusters []any, timeout time.Duration) error {
	mgmt := rollout.Cluster{Name: "management", Kubeconfig: c.Management}
	workspace := cmp.Or(c.Rancher.Workspace, "fleet-default")
	deadline := time.Now().Add(timeout)
	for _, name := range clusters {
		for {
			manifest, err := rollout.RancherRegistration(ctx, mgmt, workspace, fmt.Sprint(name), 10*time.Second)
			if err != nil {
				return err
			}
			if manifest != "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster %s: Rancher issued no registration within %s (its cluster %s/%s has no status.clusterName, or its default-token no manifestUrl: is Rancher running, with its server-url set?)",
					name, timeout, workspace, name)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
	}
	return nil
}

// writePrometheus writes the management Prometheus's configuration into dir: prometheus.yml
// (scraping kplane-fleet's health watch at fleetAddr, federating every member with a
// prometheus URL), kplane's fleet rules and the fleet's Grafana dashboard; with the fleet's
// login and a Grafana URL, the fleet Grafana's grafana.ini (login through the realm) and its
// provisioning (promURL as its data source, the dashboard).
func writePrometheus(c *fleet.Config, dir, fleetAddr, promURL string, interval time.Duration) error {
	if dir == "" || fleetAddr == "" {
		return errors.New("prometheus: --out DIR and --metrics HOST:PORT (where kplane-fleet health --watch serves its metrics) are required")
	}
	var members []monitoring.Member
	for _, cl := range c.Clusters {
		if cl.Prometheus != "" {
			members = append(members, monitoring.Member{Cluster: cl.Name, Federate: cl.Prometheus})
		}
	}
	rules, err := monitoring.Rules(nil)
	if err != nil {
		return err
	}
	cfg, err := monitoring.PrometheusConfig(monitoring.Options{Fleet: fleetAddr, Interval: interval, RuleFiles: []string{"kplane-fleet.rules.yaml"}, Members: members})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{"prometheus.yml": cfg, "kplane-fleet.rules.yaml": rules, "kplane-fleet.dashboard.json": monitoring.Dashboard}
	if l := c.Login; l != nil && l.GrafanaURL != "" { // the fleet Grafana, logging in through the realm
		files["grafana/grafana.ini"] = []byte(monitoring.GrafanaINI(identity.GrafanaLogin(l.Issuer, cmp.Or(l.GrafanaClient, "grafana"), l.GrafanaURL)))
		for path, body := range monitoring.GrafanaProvisioning(promURL) {
			files["grafana/"+path] = body
		}
	}
	for name, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s: prometheus.yml (kplane-fleet at %s, %d members federated), kplane-fleet.rules.yaml, kplane-fleet.dashboard.json\n", dir, fleetAddr, len(members))
	return nil
}

// render renders every member (or only one) into root; with check, into a temporary root that
// must equal root.
func render(ctx context.Context, c *fleet.Config, envs, env, root, only, charts string, check bool) error {
	out := root
	if check {
		tmp, err := os.MkdirTemp("", "kplane-render-check-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		out = tmp
	}
	var members []fleetmember.ClusterArgs
	for _, cl := range c.Clusters {
		if only == "" || cl.Name == only {
			members = append(members, cl)
		}
	}
	var stale []string
	err := fleet.Render(ctx, fleet.RenderOptions{Environments: envs, Out: out, Charts: charts}, env, members, func(r *fleetmember.Rendered, from string, took time.Duration) {
		how := "rendered"
		if from != "" {
			how = "the same as " + from + "'s"
		}
		fmt.Printf("cluster %s: %d objects (%d platform kinds, %d policy kinds, %d namespaces) %s in %.1f s\n",
			r.Cluster, r.Objects, len(r.Platform), len(r.Policies), len(r.Namespaces), how, took.Seconds())
	})
	if err != nil {
		return err
	}
	for _, cl := range members {
		if !check {
			break
		}
		same, err := fleet.SameRender(fleetmember.RenderedDir(out, env, cl.Name), fleetmember.RenderedDir(root, env, cl.Name))
		if err != nil {
			return err
		}
		if !same {
			stale = append(stale, cl.Name)
		}
	}
	if len(members) == 0 {
		return fmt.Errorf("--cluster %s: not a member of %s", only, env)
	}
	if only == "" { // a member no longer in the environment: its render goes too
		entries, _ := os.ReadDir(filepath.Join(root, env))
		for _, e := range entries {
			if !e.IsDir() || slices.ContainsFunc(c.Clusters, func(cl fleetmember.ClusterArgs) bool { return cl.Name == e.Name() }) {
				continue
			}
			if check {
				stale = append(stale, e.Name()+" (no longer a member)")
			} else if err := os.RemoveAll(filepath.Join(root, env, e.Name())); err != nil {
				return err
			} else {
				fmt.Printf("cluster %s: no longer a member, its render removed\n", e.Name())
			}
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("the committed render of %s differs from the environment's: run `kplane-fleet render --env %s` and commit %s", strings.Join(stale, ", "), env, root)
	}
	return nil
}
