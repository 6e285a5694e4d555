// Package drill is the restore drill (and the checks of any restore): a backup's namespace is
// restored into a scratch namespace and judged against the backup's own content — every object
// by kind and name, ConfigMap/Secret data and custom resources by checksum — not by Velero's
// phase; the time the restore took (RTO) and the data its schedule's backups may have lost
// (RPO) are measured against the schedule's targets; the evidence is kept in the backup store and
// a ConfigMap (evidence.go); the scratch namespace is emptied. A backup sealed when it was taken (its tarball's SHA-256 kept on
// the Backup object, outside the bucket) that changed since is refused before anything is restored.
package drill

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/backup/inventory"
	"github.com/kplane/kplane/components/backup/objstore"
	"github.com/kplane/kplane/components/wellknown"
)

// AccessBinding is the RoleBinding a scheduled drill's scratch namespace holds (the backup
// component makes both): the drill's only rights to read what it restored, in that namespace
// alone. A drill keeps such a namespace and its binding, and removes what it restored; a scratch
// namespace without it (an operator's drill) is deleted whole.
const AccessBinding = "kplane-restore-drill"

var accessKey = "RoleBinding.rbac.authorization.k8s.io/" + AccessBinding

var (
	backups        = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backups"}
	restores       = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "restores"}
	nsRes          = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	storageClasses = schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}
	clusterRoles   = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
	entry          = regexp.MustCompile(`^resources/[^/]+/(?:[^/]+-preferredversion/)?namespaces/([^/]+)/[^/]+\.json$`)
)

// Drill runs against one cluster's Velero and its storage location's bucket (the store's prefix
// is the location's prefix).
type Drill struct {
	Discovery discovery.DiscoveryInterface
	Dynamic   dynamic.Interface
	// Velero's namespace (default velero).
	Velero string
	Bucket *objstore.Store
	// Timeout of the restore (default 10 minutes).
	Timeout time.Duration
	// Window over which the RPO the schedule achieved is measured (default DefaultWindow).
	Window time.Duration
	// Evidence is where Keep writes each drill's evidence (nil: the ConfigMap only).
	Evidence *objstore.Store
}

// Evidence is what a drill proves, for the audit trail.
type Evidence struct {
	Backup    string `json:"backup"`
	Namespace string `json:"namespace"`
	// Schedule is the backup's Velero Schedule (empty: a backup made by hand, without targets).
	Schedule      string    `json:"schedule,omitempty"`
	Scratch       string    `json:"scratch"`
	TarballSHA256 string    `json:"tarballSHA256"`
	Sealed        bool      `json:"sealed"`
	BackupTaken   time.Time `json:"backupTaken"`
	RestoreStart  time.Time `json:"restoreStart"`
	Finished      time.Time `json:"finished"`
	// RTO: how long the restore took. RPO: for a scheduled backup, the longest stretch over
	// the drill's window that the schedule's Completed backups left uncovered (Exposure); for a
	// backup made by hand, its age. The targets are the schedule's (0: none).
	RTOSeconds       float64        `json:"rtoSeconds"`
	RPOSeconds       float64        `json:"rpoSeconds"`
	RTOTargetSeconds float64        `json:"rtoTargetSeconds,omitempty"`
	RPOTargetSeconds float64        `json:"rpoTargetSeconds,omitempty"`
	Kinds            map[string]int `json:"kinds"`
	// Problems: why the restore is not the backup (or why none ran). Passed: none.
	Problems []string `json:"problems,omitempty"`
	Passed   bool     `json:"passed"`
	// Missed names each target the drill missed (a passed drill may miss one).
	Missed []string `json:"missed,omitempty"`
}

func (d *Drill) ns() string {
	if d.Velero == "" {
		return "velero"
	}
	return d.Velero
}

func (d *Drill) backup(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	b, err := d.Dynamic.Resource(backups).Namespace(d.ns()).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("backup %s: not found in namespace %s (list them: velero backup get)", name, d.ns())
	}
	if err != nil {
		return nil, err
	}
	if phase, _, _ := unstructured.NestedString(b.Object, "status", "phase"); phase != "Completed" {
		return nil, fmt.Errorf("backup %s: phase %q: only a Completed backup is a restore source", name, phase)
	}
	return b, nil
}

// contents reads the backup's tarball: its SHA-256 and the inventory of each namespace in it.
func (d *Drill) contents(ctx context.Context, name string) (string, map[string]inventory.Inventory, error) {
	sum, byNS, _, err := d.read(ctx, name)
	return sum, byNS, err
}

// read is contents with the namespaced objects themselves (by namespace), for the pre-check.
func (d *Drill) read(ctx context.Context, name string) (string, map[string]inventory.Inventory, map[string][]unstructured.Unstructured, error) {
	body, _, err := d.Bucket.Get(ctx, "backups/"+name+"/"+name+".tar.gz")
	if err != nil {
		return "", nil, nil, fmt.Errorf("backup %s: %w", name, err)
	}
	defer body.Close()
	h := sha256.New()
	zr, err := gzip.NewReader(io.TeeReader(body, h))
	if err != nil {
		return "", nil, nil, fmt.Errorf("backup %s: tarball: %w", name, err)
	}
	byNS := map[string]inventory.Inventory{}
	objects := map[string][]unstructured.Unstructured{}
	seen := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, nil, fmt.Errorf("backup %s: tarball: %w", name, err)
		}
		m := entry.FindStringSubmatch(hdr.Name)
		if m == nil {
			continue
		}
		var o unstructured.Unstructured
		raw, err := io.ReadAll(tr)
		if err != nil {
			return "", nil, nil, err
		}
		if err := json.Unmarshal(raw, &o.Object); err != nil {
			return "", nil, nil, fmt.Errorf("backup %s: %s: %w", name, hdr.Name, err)
		}
		if byNS[m[1]] == nil {
			byNS[m[1]] = inventory.Inventory{}
		}
		// (Velero may write an object twice: under its resource and its preferred version.)
		if key := m[1] + "/" + o.GroupVersionKind().GroupKind().String() + "/" + o.GetName(); !seen[key] {
			seen[key] = true
			objects[m[1]] = append(objects[m[1]], o)
		}
		byNS[m[1]].Add(o)
	}
	_, _ = io.Copy(io.Discard, zr)
	_, _ = io.Copy(h, body) // the gzip trailer and anything after it count too
	return hex.EncodeToString(h.Sum(nil)), byNS, objects, nil
}

// Precheck lists what of namespace ns in backup name cannot be restored into this cluster as
// it is: kinds the cluster does not serve (a CRD to install first), storage classes its claims
// name that do not exist here, cluster roles its role bindings name that do not exist here.
// Empty: nothing blocks the restore or migration.
func (d *Drill) Precheck(ctx context.Context, name, ns string) ([]string, error) {
	if _, err := d.backup(ctx, name); err != nil {
		return nil, err
	}
	_, _, objects, err := d.read(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, ok := objects[ns]; !ok {
		return nil, fmt.Errorf("backup %s: namespace %q is not in it (it holds %v)", name, ns, slices.Sorted(maps.Keys(objects)))
	}
	served := map[string]bool{}
	lists, err := d.Discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			served[r.Kind+"."+gv.Group] = true
		}
	}
	exists := func(gvr schema.GroupVersionResource, name string) bool {
		_, err := d.Dynamic.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		return err == nil
	}
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, o := range objects[ns] {
		gvk := o.GroupVersionKind()
		if !served[gvk.Kind+"."+gvk.Group] {
			add(fmt.Sprintf("%s.%s: this cluster does not serve the kind (install its CRD first)", gvk.Kind, gvk.Group))
			continue
		}
		switch gvk.Kind {
		case "PersistentVolumeClaim":
			if sc, _, _ := unstructured.NestedString(o.Object, "spec", "storageClassName"); sc != "" && !exists(storageClasses, sc) {
				add(fmt.Sprintf("PersistentVolumeClaim %s: storage class %q does not exist here (create it, or map it with a change-storage-class ConfigMap)", o.GetName(), sc))
			}
		case "RoleBinding":
			if kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind"); kind == "ClusterRole" {
				if role, _, _ := unstructured.NestedString(o.Object, "roleRef", "name"); !exists(clusterRoles, role) {
					add(fmt.Sprintf("RoleBinding %s: cluster role %q does not exist here (cluster-scoped: create it first)", o.GetName(), role))
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Seal records the backup tarball's SHA-256 on the Backup object (once; a sealed backup keeps
// its first seal) and returns it.
func (d *Drill) Seal(ctx context.Context, name string) (string, error) {
	b, err := d.backup(ctx, name)
	if err != nil {
		return "", err
	}
	if sum := b.GetAnnotations()[wellknown.SealAnnotation]; sum != "" {
		return sum, nil
	}
	sum, _, err := d.contents(ctx, name)
	if err != nil {
		return "", err
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, wellknown.SealAnnotation, sum)
	_, err = d.Dynamic.Resource(backups).Namespace(d.ns()).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return sum, err
}

// Run restores namespace ns of backup name into scratch (which must not hold objects), verifies
// it against the backup's content and the schedule's targets, removes scratch and returns the
// evidence; the error says why a drill failed or which target it missed.
func (d *Drill) Run(ctx context.Context, name, ns, scratch string) (ev Evidence, err error) {
	ev = Evidence{Backup: name, Namespace: ns, Scratch: scratch}
	defer func() {
		ev.Finished = time.Now().UTC()
		if err != nil && !ev.Passed && len(ev.Problems) == 0 { // the drill did not get to restore
			ev.Problems = []string{err.Error()}
		}
	}()
	b, err := d.backup(ctx, name)
	if err != nil {
		return ev, err
	}
	if t, err := time.Parse(time.RFC3339, fmt.Sprint(b.Object["status"].(map[string]any)["startTimestamp"])); err == nil {
		ev.BackupTaken = t
	}
	sum, byNS, err := d.contents(ctx, name)
	if err != nil {
		return ev, err
	}
	ev.TarballSHA256 = sum
	if sealed := b.GetAnnotations()[wellknown.SealAnnotation]; sealed != "" {
		ev.Sealed = true
		if sealed != sum {
			return ev, fmt.Errorf("backup %s: tampered: its tarball's SHA-256 is %s, sealed %s when it was taken; restore nothing from it", name, sum, sealed)
		}
	}
	want, ok := byNS[ns]
	if !ok {
		return ev, fmt.Errorf("backup %s: namespace %q is not in it (it holds %v)", name, ns, slices.Sorted(maps.Keys(byNS)))
	}
	existing, _, err := inventory.TakeReadable(ctx, d.Discovery, d.Dynamic, scratch)
	if err != nil {
		return ev, err
	}
	_, kept := existing[accessKey]
	delete(existing, accessKey)
	if len(existing) > 0 {
		return ev, fmt.Errorf("restore into %s: the namespace has %d objects; restore into a new or empty namespace (Velero skips objects that exist: a partial restore would look complete)", scratch, len(existing))
	}
	ev.Kinds = want.Kinds()
	restore := name + "-drill-" + time.Now().UTC().Format("20060102t150405")
	ev.RestoreStart = time.Now().UTC()
	if err := d.measure(ctx, b, &ev, ev.RestoreStart); err != nil {
		return ev, err
	}
	_, err = d.Dynamic.Resource(restores).Namespace(d.ns()).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": map[string]any{"name": restore, "labels": map[string]any{wellknown.DrillLabel: "true"}},
		"spec": map[string]any{"backupName": name, "includedNamespaces": []any{ns}, "namespaceMapping": map[string]any{ns: scratch}}}}, metav1.CreateOptions{})
	if err != nil {
		return ev, err
	}
	defer d.cleanup(ctx, scratch, kept)
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	phase := ""
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		r, err := d.Dynamic.Resource(restores).Namespace(d.ns()).Get(ctx, restore, metav1.GetOptions{})
		if err != nil {
			return ev, err
		}
		phase, _, _ = unstructured.NestedString(r.Object, "status", "phase")
		if phase == "Completed" || phase == "PartiallyFailed" || phase == "Failed" || phase == "FailedValidation" {
			break
		}
		if time.Now().After(deadline) {
			return ev, fmt.Errorf("restore %s: not finished after %s (phase %q)", restore, timeout, phase)
		}
	}
	ev.RTOSeconds = time.Since(ev.RestoreStart).Seconds()
	if phase != "Completed" {
		ev.Problems = append(ev.Problems, fmt.Sprintf("restore %s ended %s (velero restore describe %s)", restore, phase, restore))
	}
	got, unreadable, err := inventory.TakeReadable(ctx, d.Discovery, d.Dynamic, scratch)
	if err != nil {
		return ev, err
	}
	delete(got, accessKey)
	for kind, n := range want.Kinds() {
		if slices.Contains(unreadable, kind) {
			ev.Problems = append(ev.Problems, fmt.Sprintf("%d %s objects not verified: the drill may not read %s in %s (add its resource to the drill's resources)", n, kind, kind, scratch))
			maps.DeleteFunc(want, func(k, _ string) bool { return inventory.Kind(k) == kind })
		}
	}
	slices.Sort(ev.Problems)
	ev.Problems = append(ev.Problems, inventory.Diff(want, got)...)
	ev.Passed = len(ev.Problems) == 0
	if !ev.Passed {
		return ev, fmt.Errorf("drill of backup %s: %d problems: %v", name, len(ev.Problems), ev.Problems)
	}
	if ev.Missed = missed(ev); len(ev.Missed) > 0 {
		return ev, fmt.Errorf("drill of backup %s: restored as it was taken, but missed %d targets: %v", name, len(ev.Missed), ev.Missed)
	}
	return ev, nil
}

// cleanup removes what the drill restored and waits (bounded) until it is gone: the scratch
// namespace itself, or, where the namespace is kept (it holds the drill's access binding),
// every object in it but the binding.
func (d *Drill) cleanup(ctx context.Context, scratch string, keep bool) {
	if !keep {
		if err := d.Dynamic.Resource(nsRes).Delete(ctx, scratch, metav1.DeleteOptions{}); err != nil {
			return
		}
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			if _, err := d.Dynamic.Resource(nsRes).Get(ctx, scratch, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return
			}
		}
		return
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		left, err := d.emptyScratch(ctx, scratch)
		if err != nil || left == 0 {
			return
		}
	}
}

// emptyScratch deletes the objects in scratch (but the access binding and what the cluster puts
// in every namespace) and returns how many it found.
func (d *Drill) emptyScratch(ctx context.Context, scratch string) (int, error) {
	left := 0
	background := metav1.DeletePropagationBackground
	_, err := inventory.Each(ctx, d.Discovery, d.Dynamic, scratch, func(res schema.GroupVersionResource, r metav1.APIResource, o unstructured.Unstructured) {
		if key := inventory.Key(o); key == accessKey || inventory.IsSkipped(key) || !slices.Contains(r.Verbs, "delete") {
			return
		}
		left++
		_ = d.Dynamic.Resource(res).Namespace(scratch).Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &background})
	})
	return left, err
}
