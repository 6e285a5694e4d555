package fleet

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/stacks/platform"
)

// RenderOptions: where the environment files are, where renders go, and what the render needs.
type RenderOptions struct {
	// Environments is the environments folder (environments/<env>/platform.yaml is the
	// environment's layer).
	Environments string
	// Out is the renders' root (default rendered): each member's is Out/<env>/<cluster>.
	Out string
	// Charts is the folder of unpacked official charts (kplane:charts), if any.
	Charts string
	// Output receives the engine's progress (nil: discarded).
	Output io.Writer
}

// MemberConfig is the platform stack config of one member: the components' defaults (the common
// layer), the environment's file over them, then the member's values laid over that key by key
// as JSON merge patches (RFC 7386: objects merge, a null removes, anything else replaces).
func MemberConfig(envs, env string, cl fleetmember.ClusterArgs) (auto.ConfigMap, error) {
	cfg, err := automation.LoadEnvironment(envs, env, "platform")
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	for _, key := range slices.Sorted(maps.Keys(cl.Values)) {
		if !slices.Contains(fleetmember.Capabilities, key) {
			return nil, fmt.Errorf("cluster %s: values.%s: not a capability of the platform (one of %s)", cl.Name, key, strings.Join(fleetmember.Capabilities, ", "))
		}
		var base any
		if v, ok := cfg["kplane:"+key]; ok {
			if err := json.Unmarshal([]byte(v.Value), &base); err != nil {
				base = v.Value // a plain string (kplane:images)
			}
		}
		merged := anymap.MergePatch(base, cl.Values[key])
		if merged == nil {
			delete(cfg, "kplane:"+key)
			continue
		}
		if s, ok := merged.(string); ok {
			cfg["kplane:"+key] = auto.ConfigValue{Value: s}
			continue
		}
		raw, err := json.Marshal(merged)
		if err != nil {
			return nil, err
		}
		cfg["kplane:"+key] = auto.ConfigValue{Value: string(raw)}
	}
	return cfg, nil
}

// inputsHash is the SHA-256 of the config (keys sorted, values as given).
func inputsHash(cfg auto.ConfigMap) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		fmt.Fprintf(h, "%s=%s\n", k, cfg[k].Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Render renders the composed platform of each member into o.Out/<env>/<member> (replacing what
// was there): the platform stack's program in the Kubernetes provider's render mode, on a stack
// of its own that lives only for the render, Helm charts rendered for the member's version and
// APIs (its kubeconfig's discovery). Members whose layered config and served APIs are the same
// get the same render: the first renders it, the others a copy with their own manifest (a fleet
// of like members renders once). A rendered Secret with data stops it: renders go to Git. done
// is told of each member's render, the member it was copied from ("" when rendered), and the time.
func Render(ctx context.Context, o RenderOptions, env string, members []fleetmember.ClusterArgs,
	done func(r *fleetmember.Rendered, copiedFrom string, took time.Duration)) error {
	root := cmp.Or(o.Out, fleetmember.DefaultRenderedPath)
	first := map[string]string{} // inputs and APIs -> the member rendered for them
	for _, cl := range members {
		start := time.Now()
		cfg, err := MemberConfig(o.Environments, env, cl)
		if err != nil {
			return err
		}
		kinds, apis, err := memberKinds(cl.Kubeconfig)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		r := &fleetmember.Rendered{Environment: env, Cluster: cl.Name, Inputs: inputsHash(cfg)}
		key := r.Inputs + "/" + apis
		from, shared := first[key]
		if shared {
			err = copyRender(fleetmember.RenderedDir(root, env, from), r, fleetmember.RenderedDir(root, env, cl.Name))
		} else {
			first[key] = cl.Name
			err = renderOne(ctx, o, cl, cfg, kinds, r, fleetmember.RenderedDir(root, env, cl.Name))
		}
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		if done != nil {
			done(r, from, time.Since(start))
		}
	}
	return nil
}

// renderOne renders cl's platform from cfg into dest, recording it in r.
func renderOne(ctx context.Context, o RenderOptions, cl fleetmember.ClusterArgs, cfg auto.ConfigMap, kinds map[schema.GroupVersionKind]kindInfo, r *fleetmember.Rendered, dest string) error {
	cfg = maps.Clone(cfg)
	cfg["kplane:kubeconfig"] = auto.ConfigValue{Value: cl.Kubeconfig}
	if o.Charts != "" {
		cfg["kplane:charts"] = auto.ConfigValue{Value: o.Charts}
	}
	work, err := os.MkdirTemp("", "kplane-render-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	raw := filepath.Join(work, "out")
	s, err := automation.Open(ctx, automation.Options{Project: platform.Project, Stack: "render-" + cl.Name, Program: platform.RenderProgram(raw),
		Config: cfg, StateDir: filepath.Join(work, "state"), Output: o.Output, Env: map[string]string{"KUBECONFIG": cl.Kubeconfig}})
	if err != nil {
		return err
	}
	if _, err := s.Up(ctx, optup.SuppressProgress()); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	staging := dest + ".rendering"
	_ = os.RemoveAll(staging)
	if err := split(raw, staging, kinds, r); err != nil {
		_ = os.RemoveAll(staging)
		return err
	}
	return publish(staging, r, dest)
}

// copyRender copies the render in from (another member's, of the same inputs and APIs) to dest,
// with r (the member's own manifest: its name, the same kinds).
func copyRender(from string, r *fleetmember.Rendered, dest string) error {
	src, err := fleetmember.LoadRendered(filepath.Dir(filepath.Dir(from)), filepath.Base(filepath.Dir(from)), filepath.Base(from))
	if err != nil {
		return err
	}
	r.Objects, r.Namespaces, r.Platform, r.Policies = src.Objects, src.Namespaces, src.Platform, src.Policies
	files, err := RenderedFiles(from)
	if err != nil {
		return err
	}
	staging := dest + ".rendering"
	_ = os.RemoveAll(staging)
	for rel, body := range files {
		if rel == fleetmember.RenderedManifest {
			continue
		}
		to := filepath.Join(staging, filepath.FromSlash(rel))
		if err = os.MkdirAll(filepath.Dir(to), 0o755); err == nil {
			err = os.WriteFile(to, body, 0o644)
		}
		if err != nil {
			_ = os.RemoveAll(staging)
			return err
		}
	}
	return publish(staging, r, dest)
}

// RenderedFiles are the files under dir (a render, or a root of renders), by slash path
// relative to it: what goes to Git.
func RenderedFiles(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = body
		return err
	})
	return out, err
}

// SameRender: the render folders a and b hold the same files with the same bytes (false when b
// does not exist).
func SameRender(a, b string) (bool, error) {
	x, err := RenderedFiles(a)
	if err != nil {
		return false, err
	}
	y, err := RenderedFiles(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil && maps.EqualFunc(x, y, bytes.Equal), err
}

// publish writes r's manifest into staging and puts staging in dest's place.
func publish(staging string, r *fleetmember.Rendered, dest string) error {
	manifest, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(staging, fleetmember.RenderedManifest), append(manifest, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(dest); err != nil {
		return err
	}
	return os.Rename(staging, dest)
}

// kindInfo is a kind's resource name and scope.
type kindInfo struct {
	resource   string
	namespaced bool
}

// memberKinds maps group/version/kind to its resource as the member serves it, and fingerprints
// what a render depends on of the member: its version and the APIs it serves (Helm's
// capabilities).
func memberKinds(kubeconfig string) (map[schema.GroupVersionKind]kindInfo, string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, "", err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, "", err
	}
	version, err := dc.ServerVersion()
	if err != nil {
		return nil, "", fmt.Errorf("discovery: %w", err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, "", fmt.Errorf("discovery: %w", err)
	}
	out := map[schema.GroupVersionKind]kindInfo{}
	apis := []string{version.GitVersion}
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if !strings.Contains(r.Name, "/") {
				out[gv.WithKind(r.Kind)] = kindInfo{r.Name, r.Namespaced}
				apis = append(apis, fmt.Sprintf("%s=%s/%t", gv.WithKind(r.Kind), r.Name, r.Namespaced))
			}
		}
	}
	slices.Sort(apis)
	sum := sha256.Sum256([]byte(strings.Join(apis, "\n")))
	return out, hex.EncodeToString(sum[:]), nil
}

// ignoreHealth is Argo CD's annotation that leaves an object out of its Application's health.
const ignoreHealth = "argocd.argoproj.io/ignore-healthcheck"

// forArgoCD is the file as Argo CD gets it: a CustomResourceDefinition is left out of its
// Application's health. Argo CD's cache can keep a CRD created by the same sync without the
// Established condition the API server set a moment later, holding the Application Progressing
// until its controller restarts (argoproj/argo-cd#4220, #25084); the custom resources of the same
// sync apply only once their CRD is established, so Synced already says it is.
func forArgoCD(f file) ([]byte, error) {
	body := bytes.TrimLeft(f.body, "-\n")
	if f.obj.Kind != "CustomResourceDefinition" {
		return body, nil
	}
	var obj map[string]any
	if err := yaml.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	md, _ := obj["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	ann[ignoreHealth] = "true"
	md["annotations"] = ann
	return yaml.Marshal(obj)
}

// file is one rendered object.
type file struct {
	path string
	obj  object
	body []byte
}

// crdKinds adds to served the kinds the render's CRDs define that the member does not serve yet,
// and the constraint kinds of its Gatekeeper ConstraintTemplates (Gatekeeper makes their CRDs:
// cluster-scoped, the plural the kind in lower case).
func crdKinds(files []file, served map[schema.GroupVersionKind]kindInfo) {
	for _, f := range files {
		if f.obj.Kind == "ConstraintTemplate" {
			kind, _ := anymap.Get(f.obj.Spec, "crd", "spec", "names", "kind").(string)
			for _, version := range []string{"v1beta1", "v1", "v1alpha1"} {
				gvk := schema.GroupVersionKind{Group: "constraints.gatekeeper.sh", Version: version, Kind: kind}
				if _, ok := served[gvk]; !ok && kind != "" {
					served[gvk] = kindInfo{strings.ToLower(kind), false}
				}
			}
		}
		if f.obj.Kind != "CustomResourceDefinition" {
			continue
		}
		group, _ := f.obj.Spec["group"].(string)
		plural, _ := anymap.Get(f.obj.Spec, "names", "plural").(string)
		kind, _ := anymap.Get(f.obj.Spec, "names", "kind").(string)
		for _, v := range anymap.List(f.obj.Spec["versions"]) {
			version, _ := v["name"].(string)
			gvk := schema.GroupVersionKind{Group: group, Version: version, Kind: kind}
			if _, ok := served[gvk]; !ok {
				served[gvk] = kindInfo{plural, f.obj.Spec["scope"] == "Namespaced"}
			}
		}
	}
}

type object struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Data       map[string]any `json:"data"`
	StringData map[string]any `json:"stringData"`
	Spec       map[string]any `json:"spec"`
}

// split files the provider's render (raw: 0-crd/, 1-manifest/) into dest/platform and
// dest/policies, and records the kinds, namespaces and count in r.
func split(raw, dest string, served map[schema.GroupVersionKind]kindInfo, r *fleetmember.Rendered) error {
	var files []file
	err := filepath.WalkDir(raw, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var o object
		if err := yaml.Unmarshal(body, &o); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		files = append(files, file{path, o, body})
		return nil
	})
	if err != nil {
		return err
	}
	crdKinds(files, served)
	namespaces := map[string]bool{}
	kinds := map[string]map[schema.GroupVersionKind]bool{fleetmember.RenderedPlatform: {}, fleetmember.RenderedPolicies: {}}
	for _, f := range files {
		gv, err := schema.ParseGroupVersion(f.obj.APIVersion)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		gvk := gv.WithKind(f.obj.Kind)
		name, _ := f.obj.Metadata["name"].(string)
		ns, _ := f.obj.Metadata["namespace"].(string)
		if f.obj.Kind == "Secret" && gv.Group == "" && (len(f.obj.Data) > 0 || len(f.obj.StringData) > 0) {
			return fmt.Errorf("the platform renders the Secret %s/%s with data: renders go to Git, so secrets come from a secret store (kplane:security.secrets) or an existing Secret the component names", ns, name)
		}
		info, ok := served[gvk]
		if !ok {
			return fmt.Errorf("%s %s: the member serves no %s and the render defines no CRD for it", f.obj.Kind, name, gvk)
		}
		folder := fleetmember.RenderedPlatform
		if fleetmember.PolicyKind(gv.Group, f.obj.Kind) {
			folder = fleetmember.RenderedPolicies
		}
		kinds[folder][gvk] = true
		if info.namespaced && ns != "" {
			namespaces[ns] = true
		}
		if f.obj.Kind == "Namespace" && gv.Group == "" {
			namespaces[name] = true
		}
		if err := os.MkdirAll(filepath.Join(dest, folder), 0o755); err != nil {
			return err
		}
		body, err := forArgoCD(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dest, folder, filepath.Base(f.path)), body, 0o644); err != nil {
			return err
		}
		r.Objects++
	}
	r.Namespaces = slices.Sorted(maps.Keys(namespaces))
	list := func(set map[schema.GroupVersionKind]bool) []fleetmember.Kind {
		var out []fleetmember.Kind
		for gvk := range set {
			info := served[gvk]
			out = append(out, fleetmember.Kind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Resource: info.resource, Namespaced: info.namespaced})
		}
		slices.SortFunc(out, func(a, b fleetmember.Kind) int {
			return strings.Compare(a.Group+"/"+a.Kind+"/"+a.Version, b.Group+"/"+b.Kind+"/"+b.Version)
		})
		return out
	}
	r.Platform, r.Policies = list(kinds[fleetmember.RenderedPlatform]), list(kinds[fleetmember.RenderedPolicies])
	return nil
}
