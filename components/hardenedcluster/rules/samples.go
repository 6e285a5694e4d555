package rules

import "strings"

// Digest is a syntactically valid image digest.
var Digest = "@sha256:" + strings.Repeat("b", 64)

// GoodPodSpec is an ordinary pod spec meeting every rule: the sample every rule admits.
func GoodPodSpec() map[string]any {
	return map[string]any{
		"automountServiceAccountToken": false,
		"securityContext":              map[string]any{"runAsNonRoot": true, "runAsUser": int64(10001), "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
		"containers": []any{map[string]any{
			"name": "app", "image": "registry.example.com/app" + Digest,
			"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": map[string]any{"drop": []any{"ALL"}}},
		}},
	}
}

// Container is the spec's first container.
func Container(spec map[string]any) map[string]any {
	return spec["containers"].([]any)[0].(map[string]any)
}

// PodSC is the pod-level securityContext.
func PodSC(spec map[string]any) map[string]any {
	return spec["securityContext"].(map[string]any)
}

// SC is the first container's securityContext.
func SC(spec map[string]any) map[string]any {
	return Container(spec)["securityContext"].(map[string]any)
}
