package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server (Debian's package: make tools installs it) on a
// loopback port, with its configuration and rule files in a folder of its own.
type Prometheus struct {
	URL, Dir string
	*proc
}

// StartPrometheus writes files (prometheus.yml and what it names) into dir, starts Prometheus
// with them on a free loopback port, waits until it is ready, and stops it when the test ends.
// config may refer to the address with {{self}} (a Prometheus scraping itself).
func StartPrometheus(t testing.TB, dir string, files map[string][]byte) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not on PATH: run `make tools` (Debian's prometheus package)")
	}
	port, err := freePort(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for name, body := range files {
		if name == "prometheus.yml" {
			body = bytes.ReplaceAll(body, []byte("{{self}}"), []byte(addr))
		}
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	p := &Prometheus{URL: "http://" + addr, Dir: dir}
	p.proc, err = startProc("prometheus", filepath.Join(dir, "prometheus.log"), cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.waitReady(context.Background(), time.Minute, 200*time.Millisecond, httpOK(http.DefaultClient, p.URL+"/-/ready")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

// Sample is one element of an instant query's result.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Query evaluates expr now; a query Prometheus refuses (bad syntax) is an error with its reason.
func (p *Prometheus) Query(expr string) ([]Sample, error) {
	resp, err := http.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, r.Error)
	}
	if r.Data.ResultType == "scalar" {
		return []Sample{{}}, nil
	}
	var out []Sample
	return out, json.Unmarshal(r.Data.Result, &out)
}

// Logs is the end of its log.
func (p *Prometheus) Logs(n int) string { return lastLines(p.log, n) }
