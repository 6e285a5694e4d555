package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/policies"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/policies/report"
)

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// previewOptions runs the preview with the packs and collects their findings from the engine's
// events; findings() returns them once the preview has finished.
func previewOptions(packs []string, config string) ([]optpreview.Option, func() []report.Finding) {
	if len(packs) == 0 {
		return nil, func() []report.Finding { return nil }
	}
	ch := make(chan events.EngineEvent)
	var mu sync.Mutex
	var found []report.Finding
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			if p := ev.PolicyEvent; p != nil {
				level := p.EnforcementLevel
				if level != "mandatory" {
					level = "advisory"
				}
				mu.Lock()
				found = append(found, report.Finding{Policy: p.PolicyName, Pack: p.PolicyPackName, Level: level, Resource: p.ResourceURN, Message: strings.TrimSpace(p.Message)})
				mu.Unlock()
			}
		}
	}()
	opts := []optpreview.Option{optpreview.PolicyPacks(packs...), optpreview.EventStreams(ch)}
	if config != "" {
		opts = append(opts, optpreview.PolicyPackConfigs(config))
	}
	return opts, func() []report.Finding {
		<-done // the Automation API closes the channel when the preview ends
		mu.Lock()
		defer mu.Unlock()
		report.SortFindings(found)
		return found
	}
}

// checkPackConfig refuses a pack configuration that is not what the engine reads, naming the
// file and the fix, before anything runs: a JSON object of policy name (or "all") to mandatory,
// advisory or disabled (or {"enforcementLevel": ...}).
func checkPackConfig(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--policy-pack-config: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("--policy-pack-config %s: not a JSON object of policy -> level: %v", path, err)
	}
	k8s, err := policies.Pack()
	if err != nil {
		return err
	}
	known := map[string]bool{"all": true}
	for _, p := range k8s.Policies {
		known[p.Name] = true
	}
	for name, v := range cfg {
		level, _ := v.(string)
		if m, ok := v.(map[string]any); ok {
			level, _ = m["enforcementLevel"].(string)
		}
		if !known[name] {
			return fmt.Errorf("--policy-pack-config %s: no policy %q in kplane's packs", path, name)
		}
		switch level {
		case "mandatory", "advisory", "disabled":
		default:
			return fmt.Errorf("--policy-pack-config %s: %s: level %q; use mandatory, advisory or disabled", path, name, level)
		}
	}
	return nil
}

// readCoverage reads the policies that applied to the stack, as the pack wrote them after the
// preview; nil (every policy counts) when no pack wrote it.
func readCoverage(path string) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var applied []string
	if json.Unmarshal(raw, &applied) != nil {
		return nil
	}
	return applied
}

// writeReport renders the compliance report for env into dir, with the node checks' reports of
// the cluster behind kubeconfig (if given) and the admission exceptions of security (the
// environment's kplane:security, JSON).
func writeReport(dir, env, lang, kubeconfig, security string, findings []report.Finding, applied []string) error {
	k8s, err := policies.Pack()
	if err != nil {
		return err
	}
	var nodes []nodecheck.Report
	if kubeconfig != "" {
		// kplane:kubeconfig is a path or the kubeconfig itself.
		cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
		if _, statErr := os.Stat(kubeconfig); statErr == nil {
			cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		}
		if err != nil {
			return fmt.Errorf("node check reports: kplane:kubeconfig: %w", err)
		}
		cs, err := k8sclient.NewForConfig(cfg)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if nodes, err = report.ReadNodeReports(ctx, cs); err != nil {
			return err
		}
	}
	r, err := report.Build(env, lang, []*pack.Pack{k8s}, findings, applied, nodes, time.Now())
	if err != nil {
		return err
	}
	if security != "" {
		var args hardenedcluster.Args
		if err := json.Unmarshal([]byte(security), &args); err != nil {
			return fmt.Errorf("config kplane:security: %w", err) // not JSON: the stack reports it too
		}
		r.WithExceptions(args.Admission.Exceptions, time.Now())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := r.JSON()
	if err != nil {
		return err
	}
	html, err := r.HTML()
	if err != nil {
		return err
	}
	for name, content := range map[string][]byte{"report.md": []byte(r.Markdown()), "report.html": []byte(html), "report.json": js} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("compliance report (%s): %s/report.{md,html,json}: %d mandatory, %d advisory violations, %d node check failures (%d nodes)\n",
		lang, dir, r.Mandatory, r.Advisory, r.NodeFailures, len(r.Nodes))
	return nil
}
