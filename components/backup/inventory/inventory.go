// Package inventory accounts for a namespace's objects, to verify a restore or a migration by
// its data rather than by Velero's phase (restores can end PartiallyFailed, or Completed with
// objects missing, with nothing in the logs): every object by kind and name, with a checksum of
// what must survive unchanged — ConfigMap and Secret data, and custom resources' spec.
package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
)

// Inventory maps "<kind>.<group>/<name>" to a content checksum ("" for kinds whose content the
// cluster rewrites on restore, such as Services' IPs: their presence is what counts).
type Inventory map[string]string

// Skipped are objects every namespace gets from the cluster itself, not from a backup, and
// records of what happened (events, leases).
var Skipped = []string{"ConfigMap/kube-root-ca.crt", "ServiceAccount/default", "Event/", "Event.events.k8s.io/", "Endpoints/", "EndpointSlice.discovery.k8s.io/", "Lease.coordination.k8s.io/"}

// Take lists every listable namespaced kind in namespace.
func Take(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface, namespace string) (Inventory, error) {
	inv, unreadable, err := TakeReadable(ctx, disc, dyn, namespace)
	if err == nil && len(unreadable) > 0 {
		err = fmt.Errorf("list %s in %s: forbidden", strings.Join(unreadable, ", "), namespace)
	}
	return inv, err
}

// TakeReadable is Take for a reader with rights on some kinds only (the restore drill): the kinds
// it may not list are returned, not an error.
func TakeReadable(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface, namespace string) (Inventory, []string, error) {
	inv := Inventory{}
	unreadable, err := Each(ctx, disc, dyn, namespace, func(_ schema.GroupVersionResource, _ metav1.APIResource, o unstructured.Unstructured) {
		inv.Add(o)
	})
	if err != nil {
		return nil, nil, err
	}
	return inv, unreadable, nil
}

// Each lists every listable namespaced kind in namespace but the Skipped kinds and calls fn with
// each object, its resource and its API resource; it returns the kinds the reader may not list.
func Each(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface, namespace string,
	fn func(res schema.GroupVersionResource, r metav1.APIResource, o unstructured.Unstructured)) ([]string, error) {
	lists, err := disc.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var unreadable []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			kind := r.Kind
			if gv.Group != "" {
				kind += "." + gv.Group
			}
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || slices.Contains(Skipped, kind+"/") {
				continue
			}
			res := gv.WithResource(r.Name)
			items, err := dyn.Resource(res).Namespace(namespace).List(ctx, metav1.ListOptions{})
			if apierrors.IsForbidden(err) {
				unreadable = append(unreadable, kind)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list %s in %s: %w", r.Name, namespace, err)
			}
			for _, o := range items.Items {
				fn(res, r, o)
			}
		}
	}
	slices.Sort(unreadable)
	return unreadable, nil
}

// Key is an object's key in an inventory: "<kind>.<group>/<name>".
func Key(o unstructured.Unstructured) string { return kindKey(o) + "/" + o.GetName() }

// Add accounts for one object (unless the cluster makes it itself or a controller owns it).
func (inv Inventory) Add(o unstructured.Unstructured) {
	key := Key(o)
	if !IsSkipped(key) && !controlled(o) {
		inv[key] = checksum(o)
	}
}

func kindKey(o unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	if gvk.Group == "" {
		return gvk.Kind
	}
	return gvk.Kind + "." + gvk.Group
}

// controlled objects (a Deployment's ReplicaSets and Pods) are their controller's to recreate:
// their names differ after a restore; their controller is accounted for.
func controlled(o unstructured.Unstructured) bool {
	return slices.ContainsFunc(o.GetOwnerReferences(), func(r metav1.OwnerReference) bool { return r.Controller != nil && *r.Controller })
}

// IsSkipped tells whether key ("<kind>/<name>") is one of the Skipped objects.
func IsSkipped(key string) bool {
	return slices.ContainsFunc(Skipped, func(p string) bool { return key == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(key, p)) })
}

// checksum is over what a restore must keep: data for ConfigMaps and Secrets, spec for custom
// resources (built-in kinds' specs carry cluster-assigned fields).
func checksum(o unstructured.Unstructured) string {
	var part any
	switch gvk := o.GroupVersionKind(); {
	case gvk.Group == "" && (gvk.Kind == "ConfigMap" || gvk.Kind == "Secret"):
		part = map[string]any{"data": o.Object["data"], "binaryData": o.Object["binaryData"]}
	case strings.Contains(gvk.Group, ".") && !strings.HasSuffix(gvk.Group, ".k8s.io"):
		part = o.Object["spec"]
	default:
		return ""
	}
	raw, _ := json.Marshal(part) // map keys are sorted: stable
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Diff lists what differs from want to got: objects missing, objects extra, content changed.
func Diff(want, got Inventory) []string {
	var out []string
	for _, k := range sortedKeys(want) {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, "missing "+k)
		case g != want[k]:
			out = append(out, "changed "+k)
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+k)
		}
	}
	return out
}

// Kind is the kind part of a key ("Deployment.apps" of "Deployment.apps/web").
func Kind(key string) string { return key[:strings.LastIndex(key, "/")] }

// Kinds counts objects per kind.
func (inv Inventory) Kinds() map[string]int {
	n := map[string]int{}
	for k := range inv {
		n[Kind(k)]++
	}
	return n
}

func sortedKeys(m Inventory) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
