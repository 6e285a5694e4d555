// Package pack runs kplane's policy packs as Pulumi analyzers: an executable that `pulumi preview
// --policy-pack <path>` (and `up`) starts with the engine's address, which serves Pulumi's
// Analyzer protocol (sdk/v3's proto) on a loopback port it prints first. Policies are Go; each
// names the controls it implements, its remediation and its enforcement level, which a pack
// configuration (`--policy-pack-config`) can change per environment.
package pack

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	pbempty "google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"

	"github.com/kplane/kplane/internal/anymap"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// Enforcement of a policy: mandatory violations stop the preview/update.
type Enforcement string

const (
	Mandatory Enforcement = "mandatory"
	Advisory  Enforcement = "advisory"
	Disabled  Enforcement = "disabled"
)

// Control is one requirement a policy implements, e.g. {"CIS", "5.2.2"}.
type Control struct {
	Framework string // CIS, KISA, ISMS-P, PSS
	ID        string
}

func (c Control) String() string { return c.Framework + " " + c.ID }

// Resource is what a policy sees: the resource's type token and its inputs as plain values.
type Resource struct {
	Type  string // e.g. kubernetes:apps/v1:Deployment
	Name  string // the Pulumi name
	URN   string
	Props map[string]any // inputs (apiVersion, kind, metadata, spec, ...); outputs in stack policies
	// Deps are the resources (URNs) each property depends on: the only link between resources
	// whose IDs a preview does not know yet (stack policies only).
	Deps map[string][]string
}

// DependsOn tells whether r's property prop refers to the resource urn.
func (r Resource) DependsOn(prop, urn string) bool {
	return slices.Contains(r.Deps[prop], urn)
}

// Unknown is how the engine spells a value a preview does not know yet.
const Unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

// FromChart tells whether the resource is rendered by an upstream Helm chart (its URN has a Chart
// or Release parent): kplane cannot change those objects directly, only the chart's values.
func (r Resource) FromChart() bool {
	return strings.Contains(r.URN, "kubernetes:helm.sh/v4:Chart$") || strings.Contains(r.URN, "kubernetes:helm.sh/v3:Release$")
}

// Meta is the resource's metadata.name (its Pulumi name when unset) and labels.
func (r Resource) Meta() (name string, labels map[string]any) {
	m, _ := r.Props["metadata"].(map[string]any)
	name, _ = m["name"].(string)
	if name == "" {
		name = r.Name
	}
	labels, _ = m["labels"].(map[string]any)
	return name, labels
}

// Strings reads a list input as strings.
func Strings(v any) []string { return anymap.Strings(v) }

// Policy is one rule of a pack.
type Policy struct {
	Name          string
	Description   string // English
	DescriptionKo string // Korean
	Remediation   string
	RemediationKo string
	Enforcement   Enforcement // default level; the pack configuration may change it
	Controls      []Control
	// Check returns one message per violation of r (empty: compliant or not applicable).
	Check func(r Resource) []string
	// StackCheck, instead of Check, judges the stack as a whole (what must be present, what must
	// refer to what) and returns its violations, each on the resource to fix.
	StackCheck func(rs []Resource) []Finding
	// Applies tells which resources the policy judges, for a policy whose subjects a stack may
	// not have (a backup, a realm, a bucket): where none is declared, the compliance report
	// says the policy's controls are not covered rather than passed. nil: every stack.
	Applies func(r Resource) bool
	// Subjects (English and Korean) names what Applies looks for: the report says a policy was
	// not applied because the stack declares none of these.
	Subjects, SubjectsKo string
}

// Applicable returns the names of the policies that judge some of rs.
func (p *Pack) Applicable(rs []Resource) []string {
	var out []string
	for _, pol := range p.Policies {
		if pol.Applies == nil || slices.ContainsFunc(rs, pol.Applies) {
			out = append(out, pol.Name)
		}
	}
	return out
}

// CoverageEnv names a file where a pack writes, after a preview or update, the JSON list of its
// policies that applied to the stack (kplane's compliance report reads it).
const CoverageEnv = "KPLANE_POLICY_COVERAGE"

// Finding is a stack policy's violation on one resource.
type Finding struct {
	URN     string
	Message string
}

// Pack is a named set of policies.
type Pack struct {
	Name     string
	Version  string
	Policies []Policy
	// ForStack, when set, is the pack for the stack being analysed, built from its config (keys
	// "project:name", values as the engine passes them). The engine configures the stack before
	// it asks for the pack's policies, so the stack's pack is the one it reports and applies.
	ForStack func(config map[string]string) (*Pack, error)
}

// Validate refuses a pack whose policies are incomplete (every policy must say what it checks,
// how to fix it, in both languages, and which controls it implements).
func (p *Pack) Validate() error {
	seen := map[string]bool{}
	for _, pol := range p.Policies {
		switch {
		case pol.Name == "" || seen[pol.Name]:
			return fmt.Errorf("pack %s: policy name %q empty or twice", p.Name, pol.Name)
		case pol.Description == "" || pol.DescriptionKo == "" || pol.Remediation == "" || pol.RemediationKo == "":
			return fmt.Errorf("pack %s: policy %s needs a description and a remediation in English and Korean", p.Name, pol.Name)
		case len(pol.Controls) == 0:
			return fmt.Errorf("pack %s: policy %s names no control", p.Name, pol.Name)
		case (pol.Check == nil) == (pol.StackCheck == nil):
			return fmt.Errorf("pack %s: policy %s needs exactly one of Check and StackCheck", p.Name, pol.Name)
		case pol.Applies != nil && (pol.Subjects == "" || pol.SubjectsKo == ""):
			return fmt.Errorf("pack %s: policy %s: Applies needs Subjects in English and Korean (the report says what was missing)", p.Name, pol.Name)
		}
		switch pol.Enforcement {
		case Mandatory, Advisory:
		default:
			return fmt.Errorf("pack %s: policy %s enforcement %q: mandatory or advisory", p.Name, pol.Name, pol.Enforcement)
		}
		seen[pol.Name] = true
	}
	return nil
}

// level is pol's enforcement under the configured levels.
func (pol Policy) level(levels map[string]Enforcement) Enforcement {
	if l, ok := levels[pol.Name]; ok {
		return l
	}
	return pol.Enforcement
}

// violation is pol's violation on r: a mandatory one on an object an upstream chart renders is
// reported, not blocking.
func (pol Policy) violation(level Enforcement, r Resource, msg string) Violation {
	if level == Mandatory && r.FromChart() {
		level, msg = Advisory, msg+" (rendered by an upstream Helm chart: reported, not blocking; set its chart values to fix)"
	}
	return Violation{Policy: pol, Level: level, Message: msg, URN: r.URN}
}

// Evaluate runs every enabled resource policy on r and returns its violations, in policy order.
func (p *Pack) Evaluate(r Resource, levels map[string]Enforcement) []Violation {
	var out []Violation
	for _, pol := range p.Policies {
		if level := pol.level(levels); pol.Check != nil && level != Disabled {
			for _, msg := range pol.Check(r) {
				out = append(out, pol.violation(level, r, msg))
			}
		}
	}
	return out
}

// EvaluateStack runs every enabled stack policy on the stack's resources.
func (p *Pack) EvaluateStack(rs []Resource, levels map[string]Enforcement) []Violation {
	byURN := map[string]Resource{}
	for _, r := range rs {
		byURN[r.URN] = r
	}
	var out []Violation
	for _, pol := range p.Policies {
		if level := pol.level(levels); pol.StackCheck != nil && level != Disabled {
			for _, f := range pol.StackCheck(rs) {
				r, ok := byURN[f.URN]
				if !ok {
					r = Resource{URN: f.URN}
				}
				out = append(out, pol.violation(level, r, f.Message))
			}
		}
	}
	return out
}

// Violation is one failed check of one resource.
type Violation struct {
	Policy  Policy
	Level   Enforcement
	Message string
	URN     string
}

// analyzer serves a Pack over Pulumi's Analyzer protocol.
type analyzer struct {
	pulumirpc.UnimplementedAnalyzerServer
	pack   *Pack
	mu     sync.Mutex
	levels map[string]Enforcement
}

func level(e Enforcement) pulumirpc.EnforcementLevel {
	switch e {
	case Advisory:
		return pulumirpc.EnforcementLevel_ADVISORY
	case Disabled:
		return pulumirpc.EnforcementLevel_DISABLED
	}
	return pulumirpc.EnforcementLevel_MANDATORY
}

func policyType(p Policy) pulumirpc.PolicyType {
	if p.StackCheck != nil {
		return pulumirpc.PolicyType_POLICY_TYPE_STACK
	}
	return pulumirpc.PolicyType_POLICY_TYPE_RESOURCE
}

func (a *analyzer) Handshake(context.Context, *pulumirpc.AnalyzerHandshakeRequest) (*pulumirpc.AnalyzerHandshakeResponse, error) {
	return &pulumirpc.AnalyzerHandshakeResponse{}, nil
}

func (a *analyzer) ConfigureStack(_ context.Context, req *pulumirpc.AnalyzerStackConfigureRequest) (*pulumirpc.AnalyzerStackConfigureResponse, error) {
	p := a.current()
	if p.ForStack == nil {
		return &pulumirpc.AnalyzerStackConfigureResponse{}, nil
	}
	stack, err := p.ForStack(req.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("policy pack %s: stack %s: %w", p.Name, req.GetStack(), err)
	}
	a.mu.Lock()
	a.pack = stack
	a.mu.Unlock()
	return &pulumirpc.AnalyzerStackConfigureResponse{}, nil
}

// current is the pack in force: the stack's once it is configured.
func (a *analyzer) current() *Pack {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pack
}

func (a *analyzer) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: a.current().Version}, nil
}

func (a *analyzer) GetAnalyzerInfo(context.Context, *pbempty.Empty) (*pulumirpc.AnalyzerInfo, error) {
	pack := a.current()
	info := &pulumirpc.AnalyzerInfo{Name: pack.Name, DisplayName: pack.Name, Version: pack.Version, SupportsConfig: true,
		InitialConfig: map[string]*pulumirpc.PolicyConfig{}}
	for _, p := range a.current().Policies {
		var controls []string
		for _, c := range p.Controls {
			controls = append(controls, c.String())
		}
		info.Policies = append(info.Policies, &pulumirpc.PolicyInfo{
			Name: p.Name, DisplayName: p.Name, Description: p.Description + " [" + strings.Join(controls, ", ") + "]",
			EnforcementLevel: level(p.Enforcement), PolicyType: policyType(p), RemediationSteps: p.Remediation,
			ConfigSchema: &pulumirpc.PolicyConfigSchema{Properties: &structpb.Struct{Fields: map[string]*structpb.Value{}}},
		})
		info.InitialConfig[p.Name] = &pulumirpc.PolicyConfig{EnforcementLevel: level(p.Enforcement)}
	}
	return info, nil
}

// Configure takes the pack configuration: per policy an enforcement level. A policy the pack
// does not have is an error (a misspelt name must not silently leave a policy at its default).
func (a *analyzer) Configure(_ context.Context, req *pulumirpc.ConfigureAnalyzerRequest) (*pbempty.Empty, error) {
	known := map[string]bool{}
	for _, p := range a.current().Policies {
		known[p.Name] = true
	}
	levels := map[string]Enforcement{}
	for name, cfg := range req.GetPolicyConfig() {
		if name == "all" {
			continue
		}
		if !known[name] {
			return nil, fmt.Errorf("policy pack %s configuration: no policy %q; known: %s", a.current().Name, name, strings.Join(a.names(), ", "))
		}
		switch cfg.GetEnforcementLevel() {
		case pulumirpc.EnforcementLevel_ADVISORY:
			levels[name] = Advisory
		case pulumirpc.EnforcementLevel_DISABLED:
			levels[name] = Disabled
		default:
			levels[name] = Mandatory
		}
	}
	a.mu.Lock()
	a.levels = levels
	a.mu.Unlock()
	return &pbempty.Empty{}, nil
}

func (a *analyzer) names() []string {
	var n []string
	for _, p := range a.current().Policies {
		n = append(n, p.Name)
	}
	sort.Strings(n)
	return n
}

func (a *analyzer) Analyze(_ context.Context, req *pulumirpc.AnalyzeRequest) (*pulumirpc.AnalyzeResponse, error) {
	a.mu.Lock()
	levels := a.levels
	a.mu.Unlock()
	r := Resource{Type: req.GetType(), Name: req.GetName(), URN: req.GetUrn(), Props: req.GetProperties().AsMap()}
	return a.diagnostics(a.current().Evaluate(r, levels)), nil
}

func (a *analyzer) diagnostics(vs []Violation) *pulumirpc.AnalyzeResponse {
	resp := &pulumirpc.AnalyzeResponse{}
	for _, v := range vs {
		resp.Diagnostics = append(resp.Diagnostics, &pulumirpc.AnalyzeDiagnostic{
			PolicyName: v.Policy.Name, PolicyPackName: a.current().Name, PolicyPackVersion: a.current().Version,
			Description: v.Policy.Description, Message: v.Message + "; fix: " + v.Policy.Remediation,
			EnforcementLevel: level(v.Level), Urn: v.URN,
		})
	}
	return resp
}

// AnalyzeStack runs the stack policies on every resource's final state (a preview's planned one).
func (a *analyzer) AnalyzeStack(_ context.Context, req *pulumirpc.AnalyzeStackRequest) (*pulumirpc.AnalyzeResponse, error) {
	a.mu.Lock()
	levels := a.levels
	a.mu.Unlock()
	var rs []Resource
	for _, x := range req.GetResources() {
		deps := map[string][]string{}
		for prop, d := range x.GetPropertyDependencies() {
			deps[prop] = d.GetUrns()
		}
		rs = append(rs, Resource{Type: x.GetType(), Name: x.GetName(), URN: x.GetUrn(), Props: x.GetProperties().AsMap(), Deps: deps})
	}
	if path := os.Getenv(CoverageEnv); path != "" {
		raw, _ := json.Marshal(a.current().Applicable(rs))
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("policy pack %s: %s: %w", a.current().Name, CoverageEnv, err)
		}
	}
	return a.diagnostics(a.current().EvaluateStack(rs, levels)), nil
}

// Main serves p as the analyzer plugin the engine started (argument: the engine's address):
// it prints the port it listens on, then serves until the engine closes it.
func Main(p *Pack) {
	if err := p.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{Init: func(srv *grpc.Server) error {
		pulumirpc.RegisterAnalyzerServer(srv, &analyzer{pack: p})
		return nil
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "policy pack:", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintln(os.Stderr, "policy pack:", err)
		os.Exit(1)
	}
}

// Get reads the value at path in nested maps (nil where it is absent).
func Get(v any, path ...string) any { return anymap.Get(v, path...) }

// Namespace is the resource's metadata.namespace.
func (r Resource) Namespace() string {
	ns, _ := Get(r.Props, "metadata", "namespace").(string)
	return ns
}

// Kind tells whether r is the Kubernetes kind of the API group (any version), e.g.
// r.Kind("velero.io", "Schedule"); group "" is the core group.
func (r Resource) Kind(group, kind string) bool {
	if group == "" {
		group = "core"
	}
	return strings.HasPrefix(r.Type, "kubernetes:"+group+"/") && strings.HasSuffix(r.Type, ":"+kind)
}
