// Package automation drives kplane's stack programs through the Pulumi Automation API as inline
// programs: the same Program function users' `pulumi up` runs, with the environment's stack
// config, the local file backend by default, and the CLI and providers from kplane's tool cache.
// `make up`, the integration tests and the fleet automation all go through it.
package automation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Options select one stack of one project.
type Options struct {
	Project string         // Pulumi project name, e.g. "kplane"
	Stack   string         // stack name, e.g. "dev"
	Program pulumi.RunFunc // the stack program
	// Config is the stack config (from LoadEnvironment, plus overrides such as the kubeconfig).
	// The stack's config becomes exactly this: keys removed from an environment are removed from
	// the stack. nil keeps the stack's config as it is.
	Config auto.ConfigMap
	// Backend is the state backend URL. Default: the local file backend under StateDir (an
	// exported PULUMI_BACKEND_URL is not used unless passed here).
	Backend string
	// StateDir holds the local backend (StateDir/pulumi). Default ".state".
	StateDir string
	// Output receives the engine's progress. Default: discarded.
	Output io.Writer
	// Env are extra environment variables for the Pulumi CLI.
	Env map[string]string
	// SecretsProvider encrypts the stack's secrets: "passphrase" (default; PULUMI_CONFIG_PASSPHRASE)
	// or a KMS/Vault URL such as "awskms://alias/kplane" or "hashivault://kplane".
	SecretsProvider string
}

// Stack is an opened (created or selected) stack.
type Stack struct {
	auto.Stack
	out io.Writer
}

// Open creates or selects the stack and applies its config. It fails early, with the fix, when
// the CLI or the passphrase is missing.
func Open(ctx context.Context, o Options) (*Stack, error) {
	if o.Project == "" || o.Stack == "" || o.Program == nil {
		return nil, errors.New("runner: Project, Stack and Program are required")
	}
	if _, err := exec.LookPath("pulumi"); err != nil {
		return nil, errors.New("the pulumi CLI is not on PATH: run `make tools` and `eval \"$(make -s env)\"` (or use the make targets, which set PATH)")
	}
	secrets := o.SecretsProvider
	if secrets == "" {
		secrets = "passphrase"
	}
	if secrets == "passphrase" && os.Getenv("PULUMI_CONFIG_PASSPHRASE") == "" && os.Getenv("PULUMI_CONFIG_PASSPHRASE_FILE") == "" {
		return nil, errors.New("PULUMI_CONFIG_PASSPHRASE is not set: it encrypts the stack's secrets (for local dev stacks `eval \"$(make -s env)\"` sets the documented dev passphrase)")
	}
	dir := o.StateDir
	if dir == "" {
		dir = ".state"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	backend := o.Backend
	if backend == "" {
		backend = "file://" + filepath.Join(dir, "pulumi")
	}
	if path, ok := strings.CutPrefix(backend, "file://"); ok {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, fmt.Errorf("state backend %s: %v", backend, err)
		}
	}
	// A workspace per stack (instead of a temporary one per run) keeps the stack's settings,
	// as the CLI's Pulumi.<stack>.yaml would, and leaves no temporary folders behind.
	work := filepath.Join(dir, "workspaces", o.Project+"-"+o.Stack)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	env := map[string]string{
		// The CLI prefers PULUMI_BACKEND_URL over the project's backend: pin it, so a stack never
		// lands in whatever backend the calling shell happens to export.
		"PULUMI_BACKEND_URL":                          backend,
		"PULUMI_SKIP_UPDATE_CHECK":                    "true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	s, err := auto.UpsertStackInlineSource(ctx, o.Stack, o.Project, o.Program,
		auto.Project(workspace.Project{
			Name:    tokens.PackageName(o.Project),
			Runtime: workspace.NewProjectRuntimeInfo("go", nil),
			Backend: &workspace.ProjectBackend{URL: backend},
		}),
		auto.SecretsProvider(secrets),
		auto.EnvVars(env),
		auto.WorkDir(work),
	)
	if err != nil {
		return nil, explain(err)
	}
	if o.Config != nil {
		if err := syncConfig(ctx, s, o.Config); err != nil {
			return nil, explain(err)
		}
	}
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	return &Stack{Stack: s, out: out}, nil
}

// syncConfig makes the stack's config equal to cfg.
func syncConfig(ctx context.Context, s auto.Stack, cfg auto.ConfigMap) error {
	current, err := s.GetAllConfig(ctx)
	if err != nil {
		return err
	}
	var stale []string
	for key := range current {
		if _, keep := cfg[key]; !keep {
			stale = append(stale, key)
		}
	}
	if len(stale) > 0 {
		if err := s.RemoveAllConfig(ctx, stale); err != nil {
			return err
		}
	}
	if len(cfg) == 0 {
		return nil
	}
	return s.SetAllConfig(ctx, cfg)
}

// Preview runs `pulumi preview` (with a refresh, so drift is seen).
func (s *Stack) Preview(ctx context.Context, opts ...optpreview.Option) (auto.PreviewResult, error) {
	opts = append([]optpreview.Option{optpreview.ProgressStreams(s.out), optpreview.ErrorProgressStreams(s.out), optpreview.Color("never")}, opts...)
	r, err := s.Stack.Preview(ctx, opts...)
	return r, explain(err)
}

// Up runs `pulumi up --yes`.
func (s *Stack) Up(ctx context.Context, opts ...optup.Option) (auto.UpResult, error) {
	opts = append([]optup.Option{optup.ProgressStreams(s.out), optup.ErrorProgressStreams(s.out), optup.Color("never")}, opts...)
	r, err := s.Stack.Up(ctx, opts...)
	return r, explain(err)
}

// Refresh runs `pulumi refresh --yes`.
func (s *Stack) Refresh(ctx context.Context) (auto.RefreshResult, error) {
	r, err := s.Stack.Refresh(ctx, optrefresh.ProgressStreams(s.out), optrefresh.ErrorProgressStreams(s.out), optrefresh.Color("never"))
	return r, explain(err)
}

// Destroy runs `pulumi destroy --yes`.
func (s *Stack) Destroy(ctx context.Context) (auto.DestroyResult, error) {
	r, err := s.Stack.Destroy(ctx, optdestroy.ProgressStreams(s.out), optdestroy.ErrorProgressStreams(s.out), optdestroy.Color("never"))
	return r, explain(err)
}

// explain turns the engine's most common setup failures into errors that say the fix.
func explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "incorrect passphrase") || strings.Contains(msg, "passphrase must be set") ||
		strings.Contains(msg, "constructing secrets manager"):
		return fmt.Errorf("the stack's secrets cannot be decrypted with PULUMI_CONFIG_PASSPHRASE: set it to the passphrase the stack was created with (local dev stacks: `eval \"$(make -s env)\"`): %w", err)
	case strings.Contains(msg, "no resource plugin") || strings.Contains(msg, "could not find plugin") || strings.Contains(msg, "failed to download plugin"):
		return fmt.Errorf("a Pulumi provider plugin is missing: run `make tools` (it builds and installs the providers into PULUMI_HOME): %w", err)
	}
	return err
}
