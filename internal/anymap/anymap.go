// Package anymap reads decoded JSON (map[string]any, []any): what Pulumi hands a policy and what
// Keycloak's admin API returns.
package anymap

import "fmt"

// Get reads the value at path in nested maps (nil where it is absent).
func Get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// List reads a list of objects (other elements are skipped).
func List(v any) []map[string]any {
	var out []map[string]any
	l, _ := v.([]any)
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// Strings reads a list as strings.
func Strings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// Of is the strings as a list of any (for objects rendered as maps).
func Of(items []string) []any {
	out := make([]any, len(items))
	for i, s := range items {
		out[i] = s
	}
	return out
}

// MergePatch applies patch to target as a JSON merge patch (RFC 7386): objects merge key by
// key, a null removes the key, anything else replaces. Neither argument is modified.
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, _ := target.(map[string]any)
	out := make(map[string]any, len(t)+len(p))
	for k, v := range t {
		out[k] = v
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}
