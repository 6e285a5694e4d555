package drill

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kplane/kplane/components/wellknown"
)

// TestCronGap: the longest gap between runs of Velero's cron schedules.
func TestCronGap(t *testing.T) {
	from := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for spec, want := range map[string]time.Duration{
		"0 2 * * *": 24 * time.Hour, "*/15 * * * *": 15 * time.Minute, "@every 6h": 6 * time.Hour,
		"0 1 * * 1-5": 72 * time.Hour, // Friday's to Monday's
		"0 3 * * 0":   7 * 24 * time.Hour, "CRON_TZ=UTC 0 2 * * *": 24 * time.Hour, "not a cron": 0,
	} {
		assert.Equal(t, want, CronGap(spec, from), spec)
	}
}

// TestTargets: a schedule's annotations, else its cron's gap and no RTO.
func TestTargets(t *testing.T) {
	s := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"schedule": "0 1 * * *"}}}
	rpo, rto := Targets(s)
	assert.Equal(t, 24*time.Hour, rpo)
	assert.Zero(t, rto)
	s.SetAnnotations(map[string]string{wellknown.RPOAnnotation: "26h", wellknown.RTOAnnotation: "30m"})
	rpo, rto = Targets(s)
	assert.Equal(t, 26*time.Hour, rpo)
	assert.Equal(t, 30*time.Minute, rto)
	s.SetAnnotations(map[string]string{wellknown.RPOAnnotation: "soon", wellknown.RTOAnnotation: "-1h"})
	rpo, rto = Targets(s)
	assert.Equal(t, 24*time.Hour, rpo, "an annotation that is not a positive duration is ignored")
	assert.Zero(t, rto)
}

// TestExposure: nightly backups leave a day uncovered; a failed night (no Completed backup)
// leaves two; a gap that ended before the window does not count, one that ends inside it counts
// whole; the time since the newest backup counts.
func TestExposure(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	night := func(daysAgo int) time.Time { return time.Date(2026, 12, 7-daysAgo, 1, 0, 0, 0, time.UTC) }
	week := 7 * 24 * time.Hour
	nightly := []time.Time{night(0), night(3), night(1), night(2)}
	assert.Equal(t, 24*time.Hour, Exposure(nightly, week, now))
	assert.Equal(t, 48*time.Hour, Exposure([]time.Time{night(0), night(2), night(3)}, week, now), "the night of the 6th failed")
	all := []time.Time{night(0), night(1), night(2), night(3), night(4), night(5), night(6), night(7), night(10)}
	assert.Equal(t, 24*time.Hour, Exposure(all, week, now), "the gap from day 10 to day 7 ended before the window")
	assert.Equal(t, 8*24*time.Hour, Exposure([]time.Time{night(0), night(1), night(2), night(10)}, week, now), "a gap that ends inside the window counts whole")
	assert.Equal(t, 35*time.Hour, Exposure([]time.Time{night(1), night(2)}, week, now), "tonight's backup is missing: 35 h since the last")
	assert.Equal(t, 11*time.Hour, Exposure([]time.Time{night(0)}, week, now), "one backup: its age")
}

// TestMissed: each target missed is named with both numbers; no target, nothing missed.
func TestMissed(t *testing.T) {
	ev := Evidence{Schedule: "kplane-teams", RPOSeconds: 48 * 3600, RPOTargetSeconds: 25 * 3600, RTOSeconds: 90, RTOTargetSeconds: 60}
	assert.Equal(t, []string{"RPO: backups of schedule kplane-teams left 48h0m0s uncovered, more than its target 25h0m0s",
		"RTO: the restore took 1m30s, more than the target 1m0s of schedule kplane-teams"}, missed(ev))
	assert.Empty(t, missed(Evidence{RPOSeconds: 1e9, RTOSeconds: 1e9}))
	assert.Empty(t, missed(Evidence{RPOSeconds: 3600, RPOTargetSeconds: 3600, RTOSeconds: 10, RTOTargetSeconds: 60}), "meeting a target exactly meets it")
}
