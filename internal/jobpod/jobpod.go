// Package jobpod is the pod of kplane's own one-shot tools (kplane-vault, kplane-realm-sync):
// restricted Pod Security (non-root, RuntimeDefault seccomp, no privilege escalation, read-only
// root, every capability dropped), small requests and limits, never restarted in place.
package jobpod

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Pod describes one tool run.
type Pod struct {
	Name, Image, ServiceAccount string
	// Token mounts the ServiceAccount's token (only for tools that call the API server).
	Token   bool
	Args    []string
	Env     corev1.EnvVarArray
	Volumes corev1.VolumeArray
	Mounts  corev1.VolumeMountArray
}

// Spec is the pod spec.
func (p Pod) Spec() corev1.PodSpecArgs {
	return corev1.PodSpecArgs{
		ServiceAccountName: pulumi.String(p.ServiceAccount), AutomountServiceAccountToken: pulumi.Bool(p.Token),
		RestartPolicy: pulumi.String("Never"),
		SecurityContext: corev1.PodSecurityContextArgs{RunAsNonRoot: pulumi.Bool(true), RunAsUser: pulumi.Int(65532),
			SeccompProfile: corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")}},
		Containers: corev1.ContainerArray{corev1.ContainerArgs{
			Name: pulumi.String(p.Name), Image: pulumi.String(p.Image), Args: pulumi.ToStringArray(p.Args), Env: p.Env, VolumeMounts: p.Mounts,
			SecurityContext: corev1.SecurityContextArgs{AllowPrivilegeEscalation: pulumi.Bool(false), ReadOnlyRootFilesystem: pulumi.Bool(true),
				Capabilities: corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})}},
			Resources: corev1.ResourceRequirementsArgs{Requests: pulumi.StringMap{"cpu": pulumi.String("10m"), "memory": pulumi.String("32Mi")},
				Limits: pulumi.StringMap{"cpu": pulumi.String("200m"), "memory": pulumi.String("64Mi")}},
		}},
		Volumes: p.Volumes,
	}
}

// SecretEnv is the environment variable name taken from key of the Secret secret.
func SecretEnv(name, secret, key string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{Name: pulumi.String(name), ValueFrom: corev1.EnvVarSourceArgs{
		SecretKeyRef: corev1.SecretKeySelectorArgs{Name: pulumi.String(secret), Key: pulumi.String(key)}}}
}
