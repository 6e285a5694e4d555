package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// apiProfile is where a command's time went on the API server, from its audit log: the
// requests that completed between since and until, grouped by verb, resource and dry run, with
// the time the server took on them (requestReceived to responseComplete), slowest groups first.
func apiProfile(b *testing.B, clusterDir string, since, until time.Time) {
	f, err := os.Open(filepath.Join(clusterDir, "audit", "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	type group struct {
		key        string
		n          int
		total, max time.Duration
	}
	groups := map[string]*group{}
	var count int
	var total time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Stage, Verb, RequestURI string
			ObjectRef               struct{ Resource string }
			Received                time.Time `json:"requestReceivedTimestamp"`
			Done                    time.Time `json:"stageTimestamp"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Stage != "ResponseComplete" || e.Received.Before(since) || e.Done.After(until) {
			continue
		}
		key := e.Verb + " " + e.ObjectRef.Resource
		if strings.Contains(e.RequestURI, "dryRun=All") {
			key += " (dry run)"
		}
		g := groups[key]
		if g == nil {
			g = &group{key: key}
			groups[key] = g
		}
		d := e.Done.Sub(e.Received)
		g.n, g.total, g.max = g.n+1, g.total+d, max(g.max, d)
		count, total = count+1, total+d
	}
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b *group) int { return int(b.total - a.total) })
	fmt.Printf("    API server: %d requests, %.1f s of server time in all\n", count, total.Seconds())
	for _, g := range list[:min(len(list), 6)] {
		fmt.Printf("      %-60s %5d requests, %6.1f s in all, slowest %6.0f ms\n", g.key, g.n, g.total.Seconds(), float64(g.max.Milliseconds()))
	}
}
