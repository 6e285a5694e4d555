package rollout

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kplane/kplane/components/backup/drill"
	"github.com/kplane/kplane/components/wellknown"
)

// What a health check reads besides health, for the fleet's monitoring: none of it makes a
// cluster unhealthy (a wave is gated on health only); the rules alert on it.

// Backup is a Velero Schedule of the member and its last completed backup.
type Backup struct {
	Schedule string `json:"schedule"`
	// LastSuccess is the completion time of the newest Completed backup of the schedule (zero:
	// none yet).
	LastSuccess time.Time `json:"lastSuccess"`
	// RPO is the Schedule's kplane.io/rpo, or the longest gap between two of its runs (over the
	// next week): a backup older than this lost more than the schedule promises.
	RPOSeconds float64 `json:"rpoSeconds"`
}

// Drill is the latest restore drill of a namespace (its evidence ConfigMap, drill.Keep).
type Drill struct {
	Namespace string `json:"namespace"`
	// Last is when the last drill finished; while none has run, when the drill was scheduled
	// (its ConfigMap made), so that a drill that never runs is overdue too.
	Last time.Time `json:"last"`
	Ran  bool      `json:"ran"`
	// IntervalSeconds: the longest gap between the drill's runs (its cron).
	IntervalSeconds float64 `json:"intervalSeconds"`
	// The last drill's evidence (when Ran).
	Passed           bool    `json:"passed"`
	RPOSeconds       float64 `json:"rpoSeconds"`
	RPOTargetSeconds float64 `json:"rpoTargetSeconds"`
	RTOSeconds       float64 `json:"rtoSeconds"`
	RTOTargetSeconds float64 `json:"rtoTargetSeconds"`
}

// Admission counts kplane's admission policy bindings (ValidatingAdmissionPolicyBindings) and
// Gatekeeper constraints of a member by whether they deny or only warn/audit.
type Admission struct {
	Enforcing int `json:"enforcing"`
	Auditing  int `json:"auditing"`
}

// certificateCapture records the serving certificate's expiry of the responses its transports
// (wrap) see.
type certificateCapture struct {
	mu  sync.Mutex
	not time.Time
}

func (c *certificateCapture) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err == nil && resp.TLS != nil {
			c.record(resp.TLS)
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (c *certificateCapture) record(s *tls.ConnectionState) {
	if len(s.PeerCertificates) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.not = s.PeerCertificates[0].NotAfter
}

func (c *certificateCapture) expiry() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.not
}

var (
	veleroBackups   = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backups"}
	veleroSchedules = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "schedules"}
)

// backups reads the member's Velero Schedules (every namespace) and their newest Completed
// backup. A member without Velero has none.
func backups(ctx context.Context, dyn dynamic.Interface) []Backup {
	schedules, err := dyn.Resource(veleroSchedules).List(ctx, metav1.ListOptions{})
	if err != nil || len(schedules.Items) == 0 {
		return nil
	}
	list, err := dyn.Resource(veleroBackups).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	last := map[string]time.Time{}
	for _, b := range list.Items {
		phase, _, _ := unstructured.NestedString(b.Object, "status", "phase")
		done, _, _ := unstructured.NestedString(b.Object, "status", "completionTimestamp")
		at, perr := time.Parse(time.RFC3339, done)
		if phase != "Completed" || perr != nil {
			continue
		}
		key := b.GetNamespace() + "/" + b.GetLabels()["velero.io/schedule-name"]
		if at.After(last[key]) {
			last[key] = at
		}
	}
	var out []Backup
	for _, s := range schedules.Items {
		rpo, _ := drill.Targets(&s)
		out = append(out, Backup{Schedule: s.GetNamespace() + "/" + s.GetName(), LastSuccess: last[s.GetNamespace()+"/"+s.GetName()], RPOSeconds: rpo.Seconds()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Schedule < out[j].Schedule })
	return out
}

// drills reads the member's restore drills: their evidence ConfigMaps (any namespace), by
// namespace drilled. Evidence that does not parse counts as a failed drill.
func drills(ctx context.Context, cs kubernetes.Interface) []Drill {
	list, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{LabelSelector: wellknown.DrillOfLabel})
	if err != nil {
		return nil
	}
	var out []Drill
	for _, cm := range list.Items {
		d := Drill{Namespace: cm.Labels[wellknown.DrillOfLabel], Last: cm.CreationTimestamp.Time,
			IntervalSeconds: drill.CronGap(cm.Annotations[wellknown.DrillScheduleAnnotation], time.Now()).Seconds()}
		if raw, ok := cm.Data[drill.EvidenceKey]; ok {
			var ev drill.Evidence
			d.Ran = true
			if json.Unmarshal([]byte(raw), &ev) == nil {
				d.Last, d.Passed = ev.Finished, ev.Passed
				d.RPOSeconds, d.RPOTargetSeconds, d.RTOSeconds, d.RTOTargetSeconds = ev.RPOSeconds, ev.RPOTargetSeconds, ev.RTOSeconds, ev.RTOTargetSeconds
			}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out
}

var gatekeeperConstraints = "constraints.gatekeeper.sh/v1beta1"

// admission counts kplane's ValidatingAdmissionPolicyBindings (Deny among their actions, or
// not) and Gatekeeper's constraints (enforcementAction deny, or dryrun/warn).
func admission(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface) Admission {
	var a Admission
	bindings, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().List(ctx, metav1.ListOptions{LabelSelector: wellknown.ManagedByLabel + "=" + wellknown.ManagedBy})
	if err == nil {
		for _, b := range bindings.Items {
			if slices.Contains(b.Spec.ValidationActions, "Deny") {
				a.Enforcing++
			} else {
				a.Auditing++
			}
		}
	}
	resources, err := cs.Discovery().ServerResourcesForGroupVersion(gatekeeperConstraints)
	if err != nil {
		return a
	}
	for _, r := range resources.APIResources {
		if strings.Contains(r.Name, "/") {
			continue
		}
		list, err := dyn.Resource(schema.GroupVersionResource{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: r.Name}).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, c := range list.Items {
			action, _, _ := unstructured.NestedString(c.Object, "spec", "enforcementAction")
			if cmp.Or(action, "deny") == "deny" {
				a.Enforcing++
			} else {
				a.Auditing++
			}
		}
	}
	return a
}
