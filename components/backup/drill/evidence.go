package drill

// A drill's targets (the RPO and RTO of the backup's Velero Schedule) and its evidence, kept
// where an auditor and the fleet's alerts find it: the backup store and a ConfigMap.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/wellknown"
)

const (
	// EvidenceKey is the key of the latest evidence in a drill's ConfigMap.
	EvidenceKey = "evidence.json"
	// EvidencePrefix: each drill's evidence is kept in the backup store under
	// EvidencePrefix<location prefix>/<namespace>/, outside Velero's own prefix (Velero refuses
	// a location holding folders it does not know).
	EvidencePrefix = "kplane-drills/"
	// DefaultWindow is how far back a drill measures the RPO the schedule achieved when
	// Drill.Window is not set: a week, the default drill's interval.
	DefaultWindow = 7 * 24 * time.Hour
)

var (
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	schedules  = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "schedules"}
)

// EvidenceConfigMap is the ConfigMap, in Velero's namespace, that holds the latest evidence of
// the drills of namespace ns.
func EvidenceConfigMap(ns string) string { return "kplane-restore-drill-" + ns }

// CronGap is the longest time between two consecutive runs of a cron schedule (five fields, or
// @every/@daily; Velero's CRON_TZ=UTC prefix allowed) over the week after from; 0 when it does
// not parse. A schedule cannot promise a smaller RPO.
func CronGap(spec string, from time.Time) time.Duration {
	sched, err := cron.ParseStandard(strings.TrimSpace(strings.TrimPrefix(spec, "CRON_TZ=UTC ")))
	if err != nil {
		return 0
	}
	var longest time.Duration
	prev := sched.Next(from)
	for end := from.Add(7 * 24 * time.Hour); prev.Before(end); {
		next := sched.Next(prev)
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest
}

// Targets are a Velero Schedule's RPO (its kplane.io/rpo, else the longest gap between its
// runs) and RTO (its kplane.io/rto, else 0: none).
func Targets(schedule *unstructured.Unstructured) (rpo, rto time.Duration) {
	spec, _, _ := unstructured.NestedString(schedule.Object, "spec", "schedule")
	rpo = CronGap(spec, time.Now())
	if d, err := time.ParseDuration(schedule.GetAnnotations()[wellknown.RPOAnnotation]); err == nil && d > 0 {
		rpo = d
	}
	if d, err := time.ParseDuration(schedule.GetAnnotations()[wellknown.RTOAnnotation]); err == nil && d > 0 {
		rto = d
	}
	return rpo, rto
}

// Exposure is the most data, as time, a restore from the schedule's backups could have lost
// during the window before now: the longest stretch not covered by a Completed backup (between
// two consecutive ones' starts, or from the newest one to now) that ends inside the window.
// A failed night makes the gap two nights long. starts need not be sorted.
func Exposure(starts []time.Time, window time.Duration, now time.Time) time.Duration {
	starts = append(slices.Clone(starts), now)
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	var worst time.Duration
	for i := 1; i < len(starts); i++ {
		if starts[i].After(now.Add(-window)) {
			worst = max(worst, starts[i].Sub(starts[i-1]))
		}
	}
	return worst
}

// measure sets ev's schedule, targets and RPO from backup b: for a scheduled backup, the
// Exposure of its schedule over the drill's window; for a backup made by hand, its age.
func (d *Drill) measure(ctx context.Context, b *unstructured.Unstructured, ev *Evidence, now time.Time) error {
	ev.RPOSeconds = now.Sub(ev.BackupTaken).Seconds()
	ev.Schedule = b.GetLabels()["velero.io/schedule-name"]
	if ev.Schedule == "" {
		return nil
	}
	s, err := d.Dynamic.Resource(schedules).Namespace(d.ns()).Get(ctx, ev.Schedule, metav1.GetOptions{})
	if apierrors.IsNotFound(err) { // a schedule since removed: its backups have no targets
		return nil
	}
	if err != nil {
		return fmt.Errorf("schedule %s of backup %s: %w", ev.Schedule, b.GetName(), err)
	}
	rpo, rto := Targets(s)
	ev.RPOTargetSeconds, ev.RTOTargetSeconds = rpo.Seconds(), rto.Seconds()
	list, err := d.Dynamic.Resource(backups).Namespace(d.ns()).List(ctx, metav1.ListOptions{LabelSelector: "velero.io/schedule-name=" + ev.Schedule})
	if err != nil {
		return fmt.Errorf("backups of schedule %s: %w", ev.Schedule, err)
	}
	var starts []time.Time
	for _, o := range list.Items {
		phase, _, _ := unstructured.NestedString(o.Object, "status", "phase")
		start, _, _ := unstructured.NestedString(o.Object, "status", "startTimestamp")
		if t, err := time.Parse(time.RFC3339, start); err == nil && phase == "Completed" {
			starts = append(starts, t)
		}
	}
	window := d.Window
	if window == 0 {
		window = DefaultWindow
	}
	ev.RPOSeconds = Exposure(starts, window, now).Seconds()
	return nil
}

// missed names the targets ev missed.
func missed(ev Evidence) []string {
	var out []string
	if ev.RPOTargetSeconds > 0 && ev.RPOSeconds > ev.RPOTargetSeconds {
		out = append(out, fmt.Sprintf("RPO: backups of schedule %s left %s uncovered, more than its target %s", ev.Schedule, seconds(ev.RPOSeconds), seconds(ev.RPOTargetSeconds)))
	}
	if ev.RTOTargetSeconds > 0 && ev.RTOSeconds > ev.RTOTargetSeconds {
		out = append(out, fmt.Sprintf("RTO: the restore took %s, more than the target %s of schedule %s", seconds(ev.RTOSeconds), seconds(ev.RTOTargetSeconds), ev.Schedule))
	}
	return out
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Second)
}

// Keep records ev: in the evidence store (when set) under <namespace>/<finished>.json, and as
// the latest evidence in the namespace's ConfigMap in Velero's namespace (made when missing).
func (d *Drill) Keep(ctx context.Context, ev Evidence) error {
	raw, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return err
	}
	if d.Evidence != nil {
		key := ev.Namespace + "/" + ev.Finished.UTC().Format("20060102T150405Z") + ".json"
		if err := d.Evidence.Put(ctx, key, raw, map[string]string{"backup": ev.Backup}); err != nil {
			return fmt.Errorf("keep the evidence: %w", err)
		}
	}
	cms := d.Dynamic.Resource(configMaps).Namespace(d.ns())
	name := EvidenceConfigMap(ev.Namespace)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm = &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name, "namespace": d.ns(),
			"labels": map[string]any{wellknown.DrillOfLabel: ev.Namespace, wellknown.ManagedByLabel: wellknown.ManagedBy}}}}
		cm.Object["data"] = map[string]any{EvidenceKey: string(raw)}
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	} else if err == nil {
		if err = unstructured.SetNestedField(cm.Object, string(raw), "data", EvidenceKey); err == nil {
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("keep the evidence in ConfigMap %s/%s: %w", d.ns(), name, err)
	}
	return nil
}
