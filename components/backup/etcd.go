// Package backup is kplane's backup stack. This file: scheduled etcd snapshots for clusters
// whose control plane the platform runs (kubeadm-style static etcd on the control-plane nodes).
package backup

import (
	"fmt"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// EtcdSnapshotNamespace is where the etcd snapshots run by default. It enforces the privileged
// Pod Security level (the job reads etcd's client certificate on the control-plane host, as root,
// on the host's network), so admission must exempt it by name.
const EtcdSnapshotNamespace = "kplane-backup"

// EtcdSnapshotsArgs schedule kplane-etcd-snapshot (components/backup/etcdsnapshot/cmd) on a
// control-plane node: snapshot from the local member, verify, upload, keep the newest Keep.
type EtcdSnapshotsArgs struct {
	// Image of kplane-etcd-snapshot, by digest.
	Image string `json:"image"`
	// Schedule in cron syntax (default every 6 hours).
	Schedule string `json:"schedule,omitempty"`
	// Keep is how many snapshots stay in the bucket (default 28: a week of 6-hourly ones).
	Keep int `json:"keep,omitempty"`
	// Endpoint of the member on the node (default https://127.0.0.1:2379, host network).
	Endpoint string `json:"endpoint,omitempty"`
	// PKIDir on the node (default /etc/kubernetes/pki); the CA, client certificate and key are
	// etcd/ca.crt, apiserver-etcd-client.crt and apiserver-etcd-client.key in it.
	PKIDir string `json:"pkiDir,omitempty"`
	// Bucket, Prefix (default etcd/<stack>/), Region and S3Endpoint (S3-compatible stores).
	Bucket     string `json:"bucket"`
	Prefix     string `json:"prefix,omitempty"`
	Region     string `json:"region,omitempty"`
	S3Endpoint string `json:"s3Endpoint,omitempty"`
	// S3CAConfigMap names a ConfigMap in the namespace whose ca.crt signed the store's certificate.
	S3CAConfigMap string `json:"s3CAConfigMap,omitempty"`
	// CredentialsSecret names a Secret in the namespace with AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY of a user limited to the bucket's prefix.
	CredentialsSecret string `json:"credentialsSecret"`
	// Namespace (default kplane-backup).
	Namespace string `json:"namespace,omitempty"`
}

func (a EtcdSnapshotsArgs) withDefaults(stack string) EtcdSnapshotsArgs {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&a.Schedule, "0 */6 * * *")
	def(&a.Endpoint, "https://127.0.0.1:2379")
	def(&a.PKIDir, "/etc/kubernetes/pki")
	def(&a.Prefix, "etcd/"+stack+"/")
	def(&a.Region, "us-east-1")
	def(&a.Namespace, EtcdSnapshotNamespace)
	if a.Keep == 0 {
		a.Keep = 28
	}
	return a
}

// Validate names the argument and the fix.
func (a EtcdSnapshotsArgs) Validate() error {
	var errs field.ErrorList
	a = a.withDefaults("x")
	if !addon.Pinned(a.Image) {
		errs.Add(field.Invalid(field.At("etcdSnapshots.image"), a.Image, "pin kplane-etcd-snapshot by digest (<registry>/kplane-etcd-snapshot@sha256:...)"))
	}
	if a.Bucket == "" {
		errs.Add(field.Required(field.At("etcdSnapshots.bucket"), "the S3 bucket of the snapshots"))
	}
	if a.CredentialsSecret == "" {
		errs.Add(field.Required(field.At("etcdSnapshots.credentialsSecret"), "a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
	}
	if a.Keep < 1 {
		errs.Add(field.Invalid(field.At("etcdSnapshots.keep"), a.Keep, "keep at least one snapshot"))
	}
	if len(strings.Fields(a.Schedule)) != 5 {
		errs.Add(field.Invalid(field.At("etcdSnapshots.schedule"), a.Schedule, "five cron fields, e.g. \"0 */6 * * *\""))
	}
	if !strings.HasPrefix(a.Endpoint, "https://") {
		errs.Add(field.Invalid(field.At("etcdSnapshots.endpoint"), a.Endpoint, "etcd's client URL over TLS (https://...)"))
	}
	if !strings.HasPrefix(a.PKIDir, "/") {
		errs.Add(field.Invalid(field.At("etcdSnapshots.pkiDir"), a.PKIDir, "an absolute path on the control-plane nodes"))
	}
	return errs.OrNil()
}

// EtcdSnapshots is the scheduled snapshot of a cluster's etcd.
type EtcdSnapshots struct {
	pulumi.ResourceState
	// CronJob is the namespace/name of the schedule (a failed Job is the alert to watch).
	CronJob pulumi.StringOutput `pulumi:"cronJob"`
}

// NewEtcdSnapshots registers the namespace, ServiceAccount and CronJob. The pod runs on a
// control-plane node with the host network (the member listens on loopback) and reads etcd's
// client certificate from the host: its namespace enforces the privileged Pod Security level
// (audit and warn at restricted), and it runs as root, read-only, with every capability dropped
// (kubeadm's keys are root's, mode 0600). A hardened cluster needs exceptions for it (docs).
func NewEtcdSnapshots(ctx *pulumi.Context, name string, args *EtcdSnapshotsArgs, opts ...pulumi.ResourceOption) (*EtcdSnapshots, error) {
	r := &EtcdSnapshots{}
	args, err := component.Register(ctx, "EtcdSnapshots", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	a := args.withDefaults(ctx.Stack())
	parent := pulumi.Parent(r)
	labels := pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-etcd-snapshot"), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}
	ns, err := corev1.NewNamespace(ctx, name+"-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(a.Namespace),
		Labels: pulumi.StringMap{"pod-security.kubernetes.io/enforce": pulumi.String("privileged"), "pod-security.kubernetes.io/enforce-version": pulumi.String(k8sobj.PodSecurityVersion),
			"pod-security.kubernetes.io/audit": pulumi.String("restricted"), "pod-security.kubernetes.io/warn": pulumi.String("restricted"),
			wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}}, parent)
	if err != nil {
		return nil, err
	}
	meta := &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-etcd-snapshot"), Namespace: ns.Metadata.Name(), Labels: labels}
	if _, err := corev1.NewServiceAccount(ctx, name+"-sa", &corev1.ServiceAccountArgs{Metadata: meta, AutomountServiceAccountToken: pulumi.Bool(false)}, parent); err != nil {
		return nil, err
	}
	credentials := bucketCredentials(a.CredentialsSecret)
	cmd := []string{"save", "--endpoint=" + a.Endpoint, "--cacert=/pki/etcd/ca.crt", "--cert=/pki/apiserver-etcd-client.crt", "--key=/pki/apiserver-etcd-client.key",
		"--bucket=" + a.Bucket, "--prefix=" + a.Prefix, "--region=" + a.Region, fmt.Sprintf("--keep=%d", a.Keep), "--work-dir=/work"}
	if a.S3Endpoint != "" {
		cmd = append(cmd, "--s3-endpoint="+a.S3Endpoint)
	}
	mounts := corev1.VolumeMountArray{
		corev1.VolumeMountArgs{Name: pulumi.String("pki"), MountPath: pulumi.String("/pki"), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("work"), MountPath: pulumi.String("/work")}}
	volumes := corev1.VolumeArray{
		corev1.VolumeArgs{Name: pulumi.String("pki"), HostPath: corev1.HostPathVolumeSourceArgs{Path: pulumi.String(a.PKIDir), Type: pulumi.String("Directory")}},
		// The snapshot is written here before upload: up to etcd's 8 GiB recommended maximum.
		corev1.VolumeArgs{Name: pulumi.String("work"), EmptyDir: corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("10Gi")}}}
	if a.S3CAConfigMap != "" {
		flag, vol, mount := s3CA(a.S3CAConfigMap)
		cmd, volumes, mounts = append(cmd, flag), append(volumes, vol), append(mounts, mount)
	}
	pod := corev1.PodSpecArgs{
		ServiceAccountName: pulumi.String("kplane-etcd-snapshot"), AutomountServiceAccountToken: pulumi.Bool(false), RestartPolicy: pulumi.String("Never"),
		HostNetwork:  pulumi.Bool(true),
		NodeSelector: pulumi.StringMap{"node-role.kubernetes.io/control-plane": pulumi.String("")},
		Tolerations: corev1.TolerationArray{corev1.TolerationArgs{Key: pulumi.String("node-role.kubernetes.io/control-plane"),
			Operator: pulumi.String("Exists"), Effect: pulumi.String("NoSchedule")}},
		SecurityContext: corev1.PodSecurityContextArgs{SeccompProfile: corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")}},
		Containers: corev1.ContainerArray{corev1.ContainerArgs{
			Name: pulumi.String("kplane-etcd-snapshot"), Image: pulumi.String(a.Image), Args: pulumi.ToStringArray(cmd),
			Env: credentials,
			SecurityContext: corev1.SecurityContextArgs{RunAsUser: pulumi.Int(0), RunAsNonRoot: pulumi.Bool(false), AllowPrivilegeEscalation: pulumi.Bool(false),
				ReadOnlyRootFilesystem: pulumi.Bool(true), Capabilities: corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})}},
			VolumeMounts: mounts,
			Resources: corev1.ResourceRequirementsArgs{Requests: pulumi.StringMap{"cpu": pulumi.String("100m"), "memory": pulumi.String("128Mi")},
				Limits: pulumi.StringMap{"cpu": pulumi.String("1"), "memory": pulumi.String("512Mi")}},
		}},
		Volumes: volumes,
	}
	cj, err := batchv1.NewCronJob(ctx, name+"-schedule", &batchv1.CronJobArgs{Metadata: meta, Spec: batchv1.CronJobSpecArgs{
		Schedule: pulumi.String(a.Schedule), ConcurrencyPolicy: pulumi.String("Forbid"), StartingDeadlineSeconds: pulumi.Int(600),
		SuccessfulJobsHistoryLimit: pulumi.Int(3), FailedJobsHistoryLimit: pulumi.Int(5),
		JobTemplate: batchv1.JobTemplateSpecArgs{Spec: batchv1.JobSpecArgs{BackoffLimit: pulumi.Int(2), ActiveDeadlineSeconds: pulumi.Int(1800),
			Template: corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: labels}, Spec: pod}}},
	}}, parent)
	if err != nil {
		return nil, err
	}
	r.CronJob = pulumi.Sprintf("%s/%s", cj.Metadata.Namespace().Elem(), cj.Metadata.Name().Elem())
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"cronJob": r.CronJob})
}
