// Package exceptions ends the hardened cluster's admission exceptions on their expiry date in
// the cluster itself, without waiting for the next `pulumi up`: what the exception-expiry
// CronJob runs (kplane-admission expire). For ValidatingAdmissionPolicies it removes the match
// conditions named exception-<i>-expires-<date> whose date has passed; for Gatekeeper
// constraints the entries of parameters.exceptions whose expires has passed.
package exceptions

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

var (
	policies      = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}
	conditionDate = regexp.MustCompile(`^exception-\d+-expires-(\d{4}-\d{2}-\d{2})$`)
)

// Target is one policy to clean: a ValidatingAdmissionPolicy (Resource empty) or a Gatekeeper
// constraint (Resource is the constraint kind's plural, e.g. kplanenoprivileged).
type Target struct {
	Resource, Name string
}

// ParseTarget reads "name" (a ValidatingAdmissionPolicy) or "resource/name" (a constraint).
func ParseTarget(s string) Target {
	if r, n, ok := strings.Cut(s, "/"); ok {
		return Target{Resource: r, Name: n}
	}
	return Target{Name: s}
}

// Expire removes from each target the exceptions whose last day is before today (UTC) and
// returns a line per exception removed. A target another writer changed meanwhile (the API
// server records a policy's type checking in its status) is read again and retried.
func Expire(ctx context.Context, dyn dynamic.Interface, targets []Target, today time.Time) ([]string, error) {
	day := today.UTC().Format("2006-01-02")
	var removed []string
	for _, t := range targets {
		res := policies
		if t.Resource != "" {
			res = schema.GroupVersionResource{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: t.Resource}
		}
		var gone []string
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var err error
			gone, err = expireOne(ctx, dyn.Resource(res), t, day)
			return err
		})
		if err != nil {
			return removed, fmt.Errorf("%s %s: %w", res.Resource, t.Name, err)
		}
		for _, g := range gone {
			removed = append(removed, fmt.Sprintf("%s: %s", t.Name, g))
		}
	}
	return removed, nil
}

// expireOne reads the target, removes its expired exceptions and writes it back if any were.
func expireOne(ctx context.Context, client dynamic.NamespaceableResourceInterface, t Target, day string) ([]string, error) {
	obj, err := client.Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var gone []string
	if t.Resource == "" {
		gone, err = expireConditions(obj, day)
	} else {
		gone, err = expireParameters(obj, day)
	}
	if err != nil || len(gone) == 0 {
		return nil, err
	}
	if _, err := client.Update(ctx, obj, metav1.UpdateOptions{FieldManager: "kplane-exception-expiry"}); err != nil {
		return nil, err
	}
	return gone, nil
}

func expireConditions(obj *unstructured.Unstructured, day string) ([]string, error) {
	conditions, _, err := unstructured.NestedSlice(obj.Object, "spec", "matchConditions")
	if err != nil {
		return nil, err
	}
	var kept []any
	var gone []string
	for _, c := range conditions {
		name, _ := c.(map[string]any)["name"].(string)
		if m := conditionDate.FindStringSubmatch(name); m != nil && m[1] < day {
			gone = append(gone, "exception expired on "+m[1]+" ("+name+")")
			continue
		}
		kept = append(kept, c)
	}
	if len(gone) > 0 {
		err = unstructured.SetNestedSlice(obj.Object, kept, "spec", "matchConditions")
	}
	return gone, err
}

func expireParameters(obj *unstructured.Unstructured, day string) ([]string, error) {
	list, found, err := unstructured.NestedSlice(obj.Object, "spec", "parameters", "exceptions")
	if err != nil || !found {
		return nil, err
	}
	var kept []any
	var gone []string
	for _, e := range list {
		m, _ := e.(map[string]any)
		if expires, _ := m["expires"].(string); expires != "" && expires < day {
			gone = append(gone, fmt.Sprintf("exception expired on %s (%v/%v)", expires, m["namespace"], m["workload"]))
			continue
		}
		kept = append(kept, e)
	}
	if len(gone) > 0 {
		if kept == nil {
			kept = []any{}
		}
		err = unstructured.SetNestedSlice(obj.Object, kept, "spec", "parameters", "exceptions")
	}
	return gone, err
}
