// Command kplane runs a kplane stack through the Automation API (what `make up`, `make preview`
// and `make down` call):
//
//	kplane up      --env dev --kubeconfig .state/clusters/dev/kubeconfig
//	kplane preview --env dev --kubeconfig ... [--policy-pack PATH ... --report-dir DIR --lang en|ko]
//	kplane refresh --env dev --kubeconfig ...
//	kplane down    --env dev
//
// The stack is named after the environment and its config is environments/<env>/platform.yaml.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/internal/cli"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/stacks/platform"
)

const usage = `usage: kplane <preview|up|refresh|down> --env NAME [--kubeconfig PATH] [flags] (kplane <command> -h for the flags)
  down destroys the environment's stack: environments other than dev need --yes (or the name typed at a terminal)`

func main() { cli.Main("kplane", usage, run) }

func run(args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("kplane "+verb, flag.ContinueOnError)
	env := fs.String("env", "dev", "environment: a folder under --environments")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the target cluster (default: the stack's kplane:kubeconfig)")
	envDir := fs.String("environments", "environments", "folder of environments")
	charts := fs.String("charts", "", "folder of unpacked official charts, an air-gapped mirror (kplane:charts; default: the environment file's)")
	state := fs.String("state", ".state", "folder of the local state backend (ignored when PULUMI_BACKEND_URL is set)")
	secrets := fs.String("secrets-provider", "passphrase", "secrets provider of new stacks: passphrase, or a KMS/Vault URL (awskms://..., hashivault://...)")
	var packs multiFlag
	fs.Var(&packs, "policy-pack", "policy pack executable to run with the preview (repeatable; `make -s policy-packs` lists kplane's)")
	packConfig := fs.String("policy-pack-config", "", "pack configuration (JSON: policy -> mandatory|advisory|disabled)")
	reportDir := fs.String("report-dir", "", "write the compliance report (report.md, report.html, report.json) here")
	lang := fs.String("lang", "en", "language of the report: en or ko")
	yes := fs.Bool("yes", false, "down: destroy without asking (environments other than dev ask, or need this)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch verb {
	case "preview", "up", "refresh", "down":
	default:
		return fmt.Errorf("unknown command %q: use preview, up, refresh or down", verb)
	}
	cfg, err := automation.LoadEnvironment(*envDir, *env, "platform")
	if err != nil {
		return err
	}
	if verb == "down" {
		target := "the cluster of its kplane:kubeconfig"
		if *kubeconfig != "" {
			target = "the cluster of " + *kubeconfig
		}
		if err := cli.ConfirmDestroy("kplane down", *env, target, *yes, os.Stdin, os.Stdout); err != nil {
			return err
		}
	}
	if *kubeconfig != "" {
		abs, err := filepath.Abs(*kubeconfig)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("--kubeconfig %s: %v (start the cluster with `make cluster NAME=%s`)", *kubeconfig, err, *env)
		}
		cfg["kplane:kubeconfig"] = auto.ConfigValue{Value: abs, Secret: true}
	}
	if _, set := cfg["kplane:charts"]; *charts != "" && !set {
		abs, err := filepath.Abs(*charts)
		if err != nil {
			return err
		}
		cfg["kplane:charts"] = auto.ConfigValue{Value: abs}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	s, err := automation.Open(ctx, automation.Options{
		Project: platform.Project, Stack: *env, Program: platform.Program,
		Config: cfg, StateDir: *state, Backend: os.Getenv("PULUMI_BACKEND_URL"), Output: os.Stdout, SecretsProvider: *secrets,
	})
	if err != nil {
		return err
	}
	switch verb {
	case "preview":
		if *reportDir != "" && len(packs) == 0 {
			return errors.New("--report-dir needs at least one --policy-pack")
		}
		if *packConfig != "" {
			if err := checkPackConfig(*packConfig); err != nil {
				return err
			}
			// The engine runs in the stack's workspace: paths must not depend on our directory.
			abs, err := filepath.Abs(*packConfig)
			if err != nil {
				return err
			}
			*packConfig = abs
		}
		for i, p := range packs {
			if abs, err := filepath.Abs(p); err == nil && strings.ContainsRune(p, '/') {
				packs[i] = abs
			}
		}
		opts, findings := previewOptions(packs, *packConfig)
		coverage, err := filepath.Abs(filepath.Join(*state, "policy-coverage.json"))
		if err != nil {
			return err
		}
		_ = os.Remove(coverage)
		os.Setenv(pack.CoverageEnv, coverage) // the packs, started by the engine, inherit it
		r, err := s.Preview(ctx, opts...)
		if *reportDir != "" {
			if rerr := writeReport(*reportDir, *env, *lang, cfg["kplane:kubeconfig"].Value, cfg["kplane:security"].Value, findings(), readCoverage(coverage)); rerr != nil {
				return rerr
			}
		}
		if err != nil {
			return err
		}
		changes := map[string]int{}
		for op, n := range r.ChangeSummary {
			changes[string(op)] = n
		}
		fmt.Printf("\npreview of %s in %.1fs: %s\n", *env, time.Since(start).Seconds(), summary(&changes))
	case "refresh":
		if _, err := s.Refresh(ctx); err != nil {
			return err
		}
	case "up":
		r, err := s.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("\nkplane: %s is up in %.1fs (%s)\n", *env, time.Since(start).Seconds(), summary(r.Summary.ResourceChanges))
		printOutputs(os.Stdout, r.Outputs)
		if *kubeconfig != "" {
			fmt.Printf("  %-20s %s\n", "kubeconfig", *kubeconfig)
		}
	case "down":
		if _, err := s.Destroy(ctx); err != nil {
			return err
		}
		fmt.Printf("\nkplane: %s destroyed in %.1fs\n", *env, time.Since(start).Seconds())
	}
	return nil
}

// summary renders resource changes as "15 created, 2 updated".
func summary(changes *map[string]int) string {
	if changes == nil || len(*changes) == 0 {
		return "no changes"
	}
	words := map[string]string{"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced", "same": "unchanged"}
	ops := make([]string, 0, len(*changes))
	for op := range *changes {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	parts := make([]string, 0, len(ops))
	for _, op := range ops {
		w, ok := words[op]
		if !ok {
			w = op
		}
		parts = append(parts, fmt.Sprintf("%d %s", (*changes)[op], w))
	}
	return strings.Join(parts, ", ")
}

// printOutputs prints the stack's outputs: the platform summary one capability at a time
// (endpoints, namespaces, what to open in a browser), the others one line each.
func printOutputs(w io.Writer, outputs auto.OutputMap) {
	for _, k := range slices.Sorted(maps.Keys(outputs)) {
		v := outputs[k]
		text := fmt.Sprint(v.Value)
		switch {
		case k == "platform":
			continue
		case v.Secret:
			text = "[secret]"
		case strings.Contains(text, "\n"): // a document (e.g. the AuthenticationConfiguration)
			text = fmt.Sprintf("(%d lines: pulumi stack output %s)", strings.Count(text, "\n"), k)
		}
		fmt.Fprintf(w, "  %-20s %s\n", k, text)
	}
	summary, _ := outputs["platform"].Value.(map[string]any)
	for _, capability := range slices.Sorted(maps.Keys(summary)) {
		fmt.Fprintf(w, "\n  %s\n", capability)
		fields, _ := summary[capability].(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			fmt.Fprintf(w, "    %-18s %s\n", k, brief(fields[k]))
		}
	}
}

// brief renders an output value on one line: lists joined, maps as key=value.
func brief(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = brief(e)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+"="+brief(x[k]))
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprint(v)
}
