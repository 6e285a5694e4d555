// Package rollout is the fleet's run time, after the stack has registered the members: health
// checks (API server, nodes, Argo CD), the Rancher registration manifest, and the wave runner
// that enables healthy members in batches and waits for Argo CD to sync each wave.
package rollout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/wellknown"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Rollout enables the platform on the members in waves: each wave's clusters are checked, and
// only when all are healthy are they enabled: a push member's Argo CD entry gets the rollout label
// the ApplicationSets select, a pull member's Applications get automated sync (Argo CD then syncs
// them). With Sync, the wave then waits until Argo CD reports every
// Application of its clusters Synced and Healthy before the next wave starts. A wave with an
// unhealthy cluster, or whose sync does not converge, stops the rollout there; the state file
// records the clusters done, so a later run resumes after them (a stopped wave is run again).
type Rollout struct {
	Clusters []Cluster
	// Batch is the clusters per wave (default 1).
	Batch int
	// Management is the management cluster's clientset; ArgoCDNamespace holds the entries.
	Management      kubernetes.Interface
	ArgoCDNamespace string
	// ApplicationSets are the environment's (a member's Applications are <name>-<member>: on the
	// management cluster, or a pull member's own).
	ApplicationSets []string
	// StateFile keeps the progress (resume); Timeout bounds each health check.
	StateFile string
	Timeout   time.Duration
	// Sync gates each wave on Argo CD's sync of its clusters (nil: enabling is enough).
	Sync *SyncGate
	// Log receives a line per step.
	Log func(format string, args ...any)
}

// SyncGate: after a wave is enabled, every cluster's Application of each ApplicationSet
// (<applicationSet>-<cluster>: on the management cluster, read with Applications; a pull
// member's on the member) must be Synced and Healthy within Timeout (default 10 minutes).
type SyncGate struct {
	Applications dynamic.Interface
	Timeout      time.Duration
	// Interval between looks at the Applications (default 2 s).
	Interval time.Duration
}

// State is the rollout's progress.
type State struct {
	Enabled []string    `json:"enabled"`
	Waves   []WaveState `json:"waves"`
}

// WaveState is one wave's outcome.
type WaveState struct {
	Clusters []string `json:"clusters"`
	Health   []Health `json:"health"`
	Enabled  bool     `json:"enabled"`
	// Synced: Argo CD synced the wave's Applications (with a sync gate); Apps their last status.
	Synced  bool        `json:"synced,omitempty"`
	Apps    []AppStatus `json:"applications,omitempty"`
	Seconds float64     `json:"seconds"`
}

// AppStatus is an Argo CD Application as the sync gate last saw it.
type AppStatus struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster"`
	Sync    string `json:"sync"`
	Health  string `json:"health"`
	Message string `json:"message,omitempty"`
}

// Done is Synced and Healthy.
func (a AppStatus) Done() bool { return a.Sync == "Synced" && a.Health == "Healthy" }

func (a AppStatus) String() string {
	s := fmt.Sprintf("%s %s/%s", a.Name, cmp.Or(a.Sync, "not generated"), cmp.Or(a.Health, "-"))
	if a.Message != "" {
		s += ": " + a.Message
	}
	return s
}

// ErrWaveStopped: a wave found an unhealthy cluster, or its sync did not converge.
var ErrWaveStopped = errors.New("rollout stopped")

func (r *Rollout) load() (State, error) {
	var s State
	raw, err := os.ReadFile(r.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(raw, &s)
}

func (r *Rollout) save(s State) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.StateFile + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.StateFile)
}

// defaults fills one cluster a wave, a 5 s health check, Argo CD in "argocd", and returns the
// logger (silent when none is set).
func (r *Rollout) defaults() func(string, ...any) {
	r.Batch = max(r.Batch, 1)
	r.Timeout = cmp.Or(r.Timeout, 5*time.Second)
	r.ArgoCDNamespace = cmp.Or(r.ArgoCDNamespace, "argocd")
	if r.Log == nil {
		return func(string, ...any) {}
	}
	return r.Log
}

// Run rolls out to the clusters not enabled yet (resume: after those the state file lists;
// otherwise from the start, the state file reset).
func (r *Rollout) Run(ctx context.Context, resume bool) (State, error) {
	log := r.defaults()
	state := State{}
	if resume {
		var err error
		if state, err = r.load(); err != nil {
			return state, fmt.Errorf("state %s: %w", r.StateFile, err)
		}
	}
	var todo []Cluster
	for _, c := range r.Clusters {
		if !slices.Contains(state.Enabled, c.Name) {
			todo = append(todo, c)
		}
	}
	for i := 0; i < len(todo); i += r.Batch {
		wave := todo[i:min(i+r.Batch, len(todo))]
		start := time.Now()
		ws := WaveState{}
		for _, c := range wave {
			ws.Clusters = append(ws.Clusters, c.Name)
		}
		ws.Health = CheckAll(ctx, wave, r.Timeout)
		var red []string
		for _, h := range ws.Health {
			if !h.Healthy {
				red = append(red, h.Cluster+": "+h.Reason)
			}
		}
		// stop records the wave and ends the rollout there, saying why.
		stop := func(what, reason string) (State, error) {
			ws.Seconds = time.Since(start).Seconds()
			state.Waves = append(state.Waves, ws)
			if err := r.save(state); err != nil {
				return state, err
			}
			log("wave %d [%s]: %s: %s", len(state.Waves), strings.Join(ws.Clusters, " "), what, reason)
			return state, fmt.Errorf("%w at wave %d: %s (fix, then run again with --resume)", ErrWaveStopped, len(state.Waves), reason)
		}
		if len(red) > 0 {
			return stop("stopped, unhealthy", strings.Join(red, "; "))
		}
		for _, c := range wave {
			if err := r.enable(ctx, c); err != nil {
				state.Waves = append(state.Waves, ws)
				_ = r.save(state)
				return state, err
			}
		}
		ws.Enabled = true
		if r.Sync != nil {
			var err error
			ws.Apps, err = r.Sync.wait(ctx, r.ArgoCDNamespace, r.ApplicationSets, wave)
			if err != nil {
				return stop("enabled, sync stopped", err.Error())
			}
			ws.Synced = true
		}
		state.Enabled = append(state.Enabled, ws.Clusters...)
		ws.Seconds = time.Since(start).Seconds()
		state.Waves = append(state.Waves, ws)
		if err := r.save(state); err != nil {
			return state, err
		}
		done := "enabled"
		if ws.Synced {
			done = fmt.Sprintf("enabled, %d applications synced and healthy", len(ws.Apps))
		}
		log("wave %d [%s]: healthy, %s in %.2f s", len(state.Waves), strings.Join(ws.Clusters, " "), done, ws.Seconds)
	}
	return state, nil
}

var applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// wait returns once every Application of the clusters is Synced and Healthy, or an error naming
// those that are not when the timeout passes (or the context ends).
func (g *SyncGate) wait(ctx context.Context, namespace string, sets []string, clusters []Cluster) ([]AppStatus, error) {
	timeout, interval := cmp.Or(g.Timeout, 10*time.Minute), cmp.Or(g.Interval, 2*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		apps := g.Look(ctx, namespace, sets, clusters)
		var pending []string
		for _, a := range apps {
			if !a.Done() {
				pending = append(pending, a.String())
			}
		}
		if len(pending) == 0 {
			return apps, nil
		}
		if time.Now().After(deadline) {
			return apps, fmt.Errorf("not synced and healthy after %s: %s", timeout, strings.Join(pending, "; "))
		}
		select {
		case <-ctx.Done():
			return apps, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Look reads each expected Application's sync and health status (and the message that says why
// it is not done: a condition, the last operation's or the health's).
func (g *SyncGate) Look(ctx context.Context, namespace string, sets []string, clusters []Cluster) []AppStatus {
	var out []AppStatus
	for _, c := range clusters {
		client, ns, cerr := g.Applications, namespace, error(nil)
		if c.Pull {
			client, cerr = c.dynamic(10 * time.Second)
			ns = c.argoCDNamespace()
		}
		for _, set := range sets {
			a := AppStatus{Name: set + "-" + c.Name, Cluster: c.Name}
			if cerr != nil {
				a.Message = cerr.Error()
				out = append(out, a)
				continue
			}
			obj, err := client.Resource(applications).Namespace(ns).Get(ctx, a.Name, metav1.GetOptions{})
			if err != nil {
				if !apierrors.IsNotFound(err) {
					a.Message = firstLine(err.Error())
				}
				out = append(out, a)
				continue
			}
			a.Sync, _, _ = unstructured.NestedString(obj.Object, "status", "sync", "status")
			a.Health, _, _ = unstructured.NestedString(obj.Object, "status", "health", "status")
			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			for _, cond := range conds {
				if m, ok := cond.(map[string]any); ok && a.Message == "" {
					a.Message, _ = m["message"].(string)
				}
			}
			if a.Message == "" && !a.Done() { // a sync that failed, or is retrying after a failure
				if phase, _, _ := unstructured.NestedString(obj.Object, "status", "operationState", "phase"); phase != "" && phase != "Succeeded" {
					a.Message, _, _ = unstructured.NestedString(obj.Object, "status", "operationState", "message")
				}
			}
			if a.Message == "" && a.Health != "" && a.Health != "Healthy" { // which objects, and why
				a.Message = unhealthyResources(obj.Object)
			}
			a.Message = firstLine(a.Message)
			out = append(out, a)
		}
	}
	return out
}

// enable sets the rollout label on a push member's Argo CD entry, or automated sync on a pull
// member's Applications (server-side apply, kplane-fleet's own field manager: the stack does not
// declare either and leaves them alone).
func (r *Rollout) enable(ctx context.Context, c Cluster) error {
	force := true
	opts := metav1.PatchOptions{FieldManager: "kplane-fleet", Force: &force}
	if !c.Pull {
		patch, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{"name": "kplane-cluster-" + c.Name, "namespace": r.ArgoCDNamespace, "labels": map[string]any{wellknown.RolloutLabel: wellknown.RolloutEnabled}}})
		if _, err := r.Management.CoreV1().Secrets(r.ArgoCDNamespace).Patch(ctx, "kplane-cluster-"+c.Name, types.ApplyPatchType, patch, opts); err != nil {
			return fmt.Errorf("cluster %s: enabling its rollout on the management cluster: %w (is it registered?)", c.Name, err)
		}
		return nil
	}
	client, err := c.dynamic(r.Timeout)
	if err != nil {
		return err
	}
	for _, set := range r.ApplicationSets {
		name := set + "-" + c.Name
		patch, _ := json.Marshal(map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": name, "namespace": c.argoCDNamespace()},
			"spec":     map[string]any{"syncPolicy": map[string]any{"automated": fleetmember.AutomatedSync}}})
		if _, err := client.Resource(applications).Namespace(c.argoCDNamespace()).Patch(ctx, name, types.ApplyPatchType, patch, opts); err != nil {
			return fmt.Errorf("cluster %s: enabling its Application %s on the member: %s (is it registered in pull mode?)", c.Name, name, firstLine(err.Error()))
		}
	}
	return nil
}

// unhealthyResources is why an Application is not Healthy: Argo CD's health message ("Caused
// by ..."), and the resources that are not Healthy (at most five) with theirs.
func unhealthyResources(app map[string]any) string {
	resources, _, _ := unstructured.NestedSlice(app, "status", "resources")
	var bad []string
	if msg, _, _ := unstructured.NestedString(app, "status", "health", "message"); msg != "" {
		bad = append(bad, msg)
	}
	for _, r := range resources {
		m, _ := r.(map[string]any)
		health, _, _ := unstructured.NestedString(m, "health", "status")
		if health == "" || health == "Healthy" {
			continue
		}
		what := fmt.Sprintf("%s %s", m["kind"], m["name"])
		if ns, _ := m["namespace"].(string); ns != "" {
			what = fmt.Sprintf("%s %s/%s", m["kind"], ns, m["name"])
		}
		if msg, _, _ := unstructured.NestedString(m, "health", "message"); msg != "" {
			what += " (" + health + ": " + strings.ReplaceAll(msg, "\n", " ") + ")"
		} else {
			what += " (" + health + ")"
		}
		if bad = append(bad, what); len(bad) == 6 {
			break
		}
	}
	return strings.Join(bad, ", ")
}
