// Package csisnap takes CSI VolumeSnapshots of the PersistentVolumeClaims a policy selects and
// keeps the newest few: what the snapshot CronJobs run (kplane-backup snapshot).
package csisnap

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kplane/kplane/components/wellknown"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// VolumeSnapshots are snapshot.storage.k8s.io/v1 VolumeSnapshots.
var VolumeSnapshots = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"}

// VolumeSnapshotClasses are snapshot.storage.k8s.io/v1 VolumeSnapshotClasses.
var VolumeSnapshotClasses = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotclasses"}

var pvcs = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}

// Policy selects claims and says how many snapshots of each to keep.
type Policy struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Selector  map[string]string `json:"selector,omitempty"`
	// Class is the VolumeSnapshotClass; its deletionPolicy must be Delete, so that pruning a
	// snapshot frees the storage's snapshot behind it (a snapshot's content takes the class's
	// policy when it is made).
	Class string `json:"class,omitempty"`
	// Keep is how many ready snapshots of each claim stay (at least 1).
	Keep int `json:"keep"`
}

// Result of one run.
type Result struct {
	Created []string `json:"created"`
	Pruned  []string `json:"pruned"`
}

// Run snapshots every selected claim, then deletes each claim's snapshots older than its Keep
// newest ready ones (a snapshot not ready yet never counts, so a failing driver never costs a
// good snapshot). A class that keeps pruned snapshots' storage is refused before anything.
func Run(ctx context.Context, dyn dynamic.Interface, p Policy, now time.Time) (Result, error) {
	var res Result
	if p.Keep < 1 {
		return res, fmt.Errorf("policy %s: keep %d: keep at least one snapshot", p.Name, p.Keep)
	}
	if err := deletingClass(ctx, dyn, p); err != nil {
		return res, err
	}
	claims, err := dyn.Resource(pvcs).Namespace(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(p.Selector).String()})
	if err != nil {
		return res, fmt.Errorf("policy %s: claims in %s: %w", p.Name, p.Namespace, err)
	}
	stamp := now.UTC().Format("20060102-150405")
	for _, c := range claims.Items {
		name := trim(fmt.Sprintf("%s-%s", c.GetName(), stamp))
		spec := map[string]any{"source": map[string]any{"persistentVolumeClaimName": c.GetName()}}
		if p.Class != "" {
			spec["volumeSnapshotClassName"] = p.Class
		}
		_, err := dyn.Resource(VolumeSnapshots).Namespace(p.Namespace).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
			"metadata": map[string]any{"name": name, "labels": map[string]any{wellknown.SnapshotPolicyLabel: p.Name, wellknown.ClaimLabel: c.GetName(), wellknown.ManagedByLabel: wellknown.ManagedBy}},
			"spec":     spec}}, metav1.CreateOptions{})
		if err != nil {
			return res, fmt.Errorf("policy %s: snapshot of %s/%s: %w", p.Name, p.Namespace, c.GetName(), err)
		}
		res.Created = append(res.Created, name)
		pruned, err := prune(ctx, dyn, p, c.GetName())
		if err != nil {
			return res, err
		}
		res.Pruned = append(res.Pruned, pruned...)
	}
	return res, nil
}

// deletingClass: the policy's class exists and deletes the storage's snapshot with the object.
func deletingClass(ctx context.Context, dyn dynamic.Interface, p Policy) error {
	const fix = "use a VolumeSnapshotClass with deletionPolicy Delete, so that pruning frees the storage's snapshot"
	if p.Class == "" {
		return fmt.Errorf("policy %s: no class: %s", p.Name, fix)
	}
	c, err := dyn.Resource(VolumeSnapshotClasses).Get(ctx, p.Class, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("policy %s: class %s: %w", p.Name, p.Class, err)
	}
	if policy, _, _ := unstructured.NestedString(c.Object, "deletionPolicy"); policy != "Delete" {
		return fmt.Errorf("policy %s: class %s has deletionPolicy %s: a pruned snapshot would keep its storage; %s", p.Name, p.Class, policy, fix)
	}
	return nil
}

func prune(ctx context.Context, dyn dynamic.Interface, p Policy, claim string) ([]string, error) {
	list, err := dyn.Resource(VolumeSnapshots).Namespace(p.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(map[string]string{wellknown.SnapshotPolicyLabel: p.Name, wellknown.ClaimLabel: claim}).String()})
	if err != nil {
		return nil, err
	}
	snaps := list.Items
	// Newest first: kplane's names end with the UTC time they were taken (sortable).
	slices.SortFunc(snaps, func(a, b unstructured.Unstructured) int { return strings.Compare(b.GetName(), a.GetName()) })
	ready := 0
	var pruned []string
	for _, s := range snaps {
		if ready >= p.Keep {
			if err := dyn.Resource(VolumeSnapshots).Namespace(p.Namespace).Delete(ctx, s.GetName(), metav1.DeleteOptions{}); err != nil {
				return pruned, fmt.Errorf("policy %s: pruning %s: %w", p.Name, s.GetName(), err)
			}
			pruned = append(pruned, s.GetName())
			continue
		}
		if ok, _, _ := unstructured.NestedBool(s.Object, "status", "readyToUse"); ok {
			ready++
		}
	}
	return pruned, nil
}

// trim keeps an object name within 63 characters.
func trim(s string) string {
	if len(s) <= 63 {
		return s
	}
	return strings.TrimRight(s[:63], "-")
}
