package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Rollout enables the platform on the members in waves: each wave's clusters are checked, and
// only when all are healthy does their Argo CD entry get the rollout label the ApplicationSets
// select (Argo CD then syncs them). A wave with an unhealthy cluster stops the rollout there; the
// state file records the enabled clusters, so a later run resumes after them.
type Rollout struct {
	Clusters []Cluster
	// Batch is the clusters per wave (default 1).
	Batch int
	// Management is the management cluster's clientset; ArgoCDNamespace holds the entries.
	Management      kubernetes.Interface
	ArgoCDNamespace string
	// StateFile keeps the progress (resume); Timeout bounds each health check.
	StateFile string
	Timeout   time.Duration
	// Log receives a line per step.
	Log func(format string, args ...any)
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
	Seconds  float64  `json:"seconds"`
}

// ErrWaveStopped: a wave found an unhealthy cluster.
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

// Run rolls out to the clusters not enabled yet (resume: after those the state file lists;
// otherwise from the start, the state file reset).
func (r *Rollout) Run(ctx context.Context, resume bool) (State, error) {
	if r.Batch < 1 {
		r.Batch = 1
	}
	if r.Timeout == 0 {
		r.Timeout = 5 * time.Second
	}
	if r.ArgoCDNamespace == "" {
		r.ArgoCDNamespace = "argocd"
	}
	log := r.Log
	if log == nil {
		log = func(string, ...any) {}
	}
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
		if len(red) > 0 {
			ws.Seconds = time.Since(start).Seconds()
			state.Waves = append(state.Waves, ws)
			if err := r.save(state); err != nil {
				return state, err
			}
			log("wave %d [%s]: stopped, unhealthy: %s", len(state.Waves), strings.Join(ws.Clusters, " "), strings.Join(red, "; "))
			return state, fmt.Errorf("%w at wave %d: %s (fix, then run again with --resume)", ErrWaveStopped, len(state.Waves), strings.Join(red, "; "))
		}
		for _, c := range wave {
			if err := r.enable(ctx, c.Name); err != nil {
				state.Waves = append(state.Waves, ws)
				_ = r.save(state)
				return state, err
			}
			state.Enabled = append(state.Enabled, c.Name)
		}
		ws.Enabled = true
		ws.Seconds = time.Since(start).Seconds()
		state.Waves = append(state.Waves, ws)
		if err := r.save(state); err != nil {
			return state, err
		}
		log("wave %d [%s]: healthy, enabled in %.2f s", len(state.Waves), strings.Join(ws.Clusters, " "), ws.Seconds)
	}
	return state, nil
}

// enable sets the rollout label on the member's Argo CD entry (server-side apply, kplane-fleet's
// own field manager: the stack does not declare the label and leaves it alone).
func (r *Rollout) enable(ctx context.Context, cluster string) error {
	patch, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "kplane-cluster-" + cluster, "namespace": r.ArgoCDNamespace, "labels": map[string]any{RolloutLabel: "enabled"}}})
	force := true
	_, err := r.Management.CoreV1().Secrets(r.ArgoCDNamespace).Patch(ctx, "kplane-cluster-"+cluster, types.ApplyPatchType, patch,
		metav1.PatchOptions{FieldManager: "kplane-fleet", Force: &force})
	if err != nil {
		return fmt.Errorf("cluster %s: enabling its rollout on the management cluster: %w (is it registered?)", cluster, err)
	}
	return nil
}
