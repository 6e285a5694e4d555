// Package vaultbootstrap configures Vault for a hardened cluster through Vault's own API client
// (github.com/hashicorp/vault/api), the Kubernetes-native route the component runs as a Job:
// the cluster's Kubernetes auth method, the KV v2 engine, one policy and one role per service
// (its own path, read only), and the rotator's role. It also rotates secrets (Rotate), which the
// component schedules as CronJobs. Every step is idempotent: a second run changes nothing.
package vaultbootstrap

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Plan is what the component computes and hands to the bootstrap Job (as JSON in a ConfigMap).
type Plan struct {
	// AuthPath is the mount of the cluster's Kubernetes auth method ("kubernetes").
	AuthPath string `json:"authPath"`
	// KubernetesHost is the API server URL as Vault reaches it.
	KubernetesHost string `json:"kubernetesHost"`
	// KubernetesCACert is the PEM Vault verifies the API server with.
	KubernetesCACert string `json:"kubernetesCaCert,omitempty"`
	// KVMount is the KV version 2 engine's mount ("secret").
	KVMount string `json:"kvMount"`
	// Policies maps policy name to HCL.
	Policies map[string]string `json:"policies"`
	// Roles of the auth method, each bound to one ServiceAccount.
	Roles []Role `json:"roles"`
}

// Role binds one ServiceAccount to policies.
type Role struct {
	Name           string   `json:"name"`
	ServiceAccount string   `json:"serviceAccount"`
	Namespace      string   `json:"namespace"`
	Policies       []string `json:"policies"`
	TTL            string   `json:"ttl"`
}

// Bootstrap applies plan; reviewerJWT is the token Vault verifies service tokens with (a
// ServiceAccount allowed to create TokenReviews). It returns what it changed.
func Bootstrap(ctx context.Context, c *vault.Client, plan Plan, reviewerJWT string) ([]string, error) {
	var changed []string
	sys := c.Sys()
	auths, err := sys.ListAuthWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list auth methods: %w", err)
	}
	if _, ok := auths[plan.AuthPath+"/"]; !ok {
		if err := sys.EnableAuthWithOptionsWithContext(ctx, plan.AuthPath, &vault.EnableAuthOptions{Type: "kubernetes", Description: "kplane: this cluster's service accounts"}); err != nil {
			return nil, fmt.Errorf("enable kubernetes auth at %s: %w", plan.AuthPath, err)
		}
		changed = append(changed, "enabled auth "+plan.AuthPath)
	}
	mounts, err := sys.ListMountsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	if m, ok := mounts[plan.KVMount+"/"]; !ok {
		if err := sys.MountWithContext(ctx, plan.KVMount, &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}, Description: "kplane: service secrets"}); err != nil {
			return nil, fmt.Errorf("mount kv-v2 at %s: %w", plan.KVMount, err)
		}
		changed = append(changed, "mounted kv-v2 "+plan.KVMount)
	} else if m.Type != "kv" || m.Options["version"] != "2" {
		return nil, fmt.Errorf("mount %s is %s version %q, not kv version 2: choose another KVMount", plan.KVMount, m.Type, m.Options["version"])
	}
	config := map[string]any{"kubernetes_host": plan.KubernetesHost, "kubernetes_ca_cert": plan.KubernetesCACert, "token_reviewer_jwt": reviewerJWT}
	if ok, err := write(ctx, c, "auth/"+plan.AuthPath+"/config", config, "token_reviewer_jwt"); err != nil {
		return nil, err
	} else if ok {
		changed = append(changed, "configured auth "+plan.AuthPath)
	}
	for _, name := range slices.Sorted(maps.Keys(plan.Policies)) {
		current, err := sys.GetPolicyWithContext(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("read policy %s: %w", name, err)
		}
		if current == plan.Policies[name] {
			continue
		}
		if err := sys.PutPolicyWithContext(ctx, name, plan.Policies[name]); err != nil {
			return nil, fmt.Errorf("write policy %s: %w", name, err)
		}
		changed = append(changed, "policy "+name)
	}
	for _, r := range plan.Roles {
		ttl, err := time.ParseDuration(r.TTL)
		if err != nil {
			return nil, fmt.Errorf("role %s: ttl %q: %w", r.Name, r.TTL, err)
		}
		role := map[string]any{
			"bound_service_account_names":      []string{r.ServiceAccount},
			"bound_service_account_namespaces": []string{r.Namespace},
			"token_policies":                   r.Policies,
			"token_ttl":                        int(ttl.Seconds()), // Vault reads it back in seconds
		}
		if ok, err := write(ctx, c, "auth/"+plan.AuthPath+"/role/"+r.Name, role); err != nil {
			return nil, err
		} else if ok {
			changed = append(changed, "role "+r.Name)
		}
	}
	return changed, nil
}

// write puts data at path unless what Vault returns for it already matches (ignoring
// write-only fields such as secrets Vault never returns). It reports whether it wrote.
func write(ctx context.Context, c *vault.Client, path string, data map[string]any, writeOnly ...string) (bool, error) {
	current, err := c.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if current != nil && same(current.Data, data, writeOnly) {
		return false, nil
	}
	if _, err := c.Logical().WriteWithContext(ctx, path, data); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// same compares the fields of want with what Vault returned, as JSON (Vault returns lists and
// durations in its own types).
func same(got, want map[string]any, skip []string) bool {
	for k, v := range want {
		if slices.Contains(skip, k) {
			continue
		}
		a, _ := json.Marshal(normalise(got[k]))
		b, _ := json.Marshal(normalise(v))
		if string(a) != string(b) {
			return false
		}
	}
	return true
}

func normalise(v any) any {
	switch t := v.(type) {
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out
	case json.Number: // a number, as the value written
		return json.RawMessage(t)
	}
	return v
}

// Rotate writes a new version of the KV v2 secret at path with fresh random values for keys
// (length random bytes each, base64url), keeping its other keys, and returns the new version.
// It never reads the secret's values: it reads the version from the metadata and patches with
// check-and-set on it, so the rotator's policy needs no "read" on the data and two rotations
// cannot interleave. A secret that does not exist yet is created.
func Rotate(ctx context.Context, c *vault.Client, kvMount, path string, keys []string, length int) (int, error) {
	kv := c.KVv2(kvMount)
	data := map[string]any{}
	for _, k := range keys {
		b := make([]byte, length)
		if _, err := rand.Read(b); err != nil {
			return 0, err
		}
		data[k] = base64.RawURLEncoding.EncodeToString(b)
	}
	md, err := kv.GetMetadata(ctx, path)
	var s *vault.KVSecret
	switch {
	case errors.Is(err, vault.ErrSecretNotFound):
		s, err = kv.Put(ctx, path, data, vault.WithCheckAndSet(0))
	case err != nil:
		return 0, fmt.Errorf("read the version of %s/%s: %w", kvMount, path, err)
	default:
		s, err = kv.Patch(ctx, path, data, vault.WithCheckAndSet(md.CurrentVersion))
	}
	if err != nil {
		return 0, fmt.Errorf("write %s/%s: %w", kvMount, path, err)
	}
	return s.VersionMetadata.Version, nil
}
