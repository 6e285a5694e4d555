package hardenedcluster

import (
	"slices"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/jobpod"
	"github.com/kplane/kplane/internal/k8sobj"
)

// ExceptionExpiryNamespace holds the exception-expiry CronJob.
const ExceptionExpiryNamespace = "kplane-admission"

// expiryTargets are the policies (VAP names) or constraints (resource/name) holding exceptions.
func (a *Args) expiryTargets() []string {
	var out []string
	for _, e := range a.Admission.Exceptions {
		t := e.Policy
		if a.Admission.Engine == "gatekeeper" {
			t = strings.ToLower(templateKind(e.Policy)) + "/" + e.Policy
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// newExceptionExpiry schedules kplane-admission expire every day at 00:05 UTC: the exceptions
// whose last day has passed leave the cluster's policies. Its account may get and update those
// policies (or constraints) by name and nothing else.
func newExceptionExpiry(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) error {
	targets := args.expiryTargets()
	if len(targets) == 0 {
		return nil
	}
	const account = "kplane-exception-expiry"
	labels := pulumi.StringMap{wellknown.NameLabel: pulumi.String(account), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}
	ns, err := corev1.NewNamespace(ctx, name+"-expiry-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(ExceptionExpiryNamespace),
		Labels: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), "pod-security.kubernetes.io/enforce": pulumi.String("restricted"),
			"pod-security.kubernetes.io/enforce-version": pulumi.String(k8sobj.PodSecurityVersion)}}}, opts...)
	if err != nil {
		return err
	}
	meta := &metav1.ObjectMetaArgs{Name: pulumi.String(account), Namespace: ns.Metadata.Name(), Labels: labels}
	if _, err := corev1.NewServiceAccount(ctx, name+"-expiry", &corev1.ServiceAccountArgs{Metadata: meta, AutomountServiceAccountToken: pulumi.Bool(false)}, opts...); err != nil {
		return err
	}
	var rules rbacv1.PolicyRuleArray
	for _, t := range targets {
		group, resource, policy := "admissionregistration.k8s.io", "validatingadmissionpolicies", t
		if r, n, ok := strings.Cut(t, "/"); ok {
			group, resource, policy = "constraints.gatekeeper.sh", r, n
		}
		rules = append(rules, rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{group}), Resources: pulumi.ToStringArray([]string{resource}),
			ResourceNames: pulumi.ToStringArray([]string{policy}), Verbs: pulumi.ToStringArray([]string{"get", "update"})})
	}
	cluster := &metav1.ObjectMetaArgs{Name: pulumi.String(account), Labels: labels}
	if _, err := rbacv1.NewClusterRole(ctx, name+"-expiry", &rbacv1.ClusterRoleArgs{Metadata: cluster, Rules: rules}, opts...); err != nil {
		return err
	}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-expiry", &rbacv1.ClusterRoleBindingArgs{Metadata: cluster,
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String(account)},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(account), Namespace: pulumi.String(ExceptionExpiryNamespace)}}}, opts...); err != nil {
		return err
	}
	pod := jobpod.Pod{Name: "kplane-admission", Image: args.Admission.ExpiryImage, ServiceAccount: account, Token: true,
		Args: []string{"expire", "--targets=" + strings.Join(targets, ",")}}
	_, err = batchv1.NewCronJob(ctx, name+"-expiry", &batchv1.CronJobArgs{Metadata: meta,
		Spec: batchv1.CronJobSpecArgs{Schedule: pulumi.String("5 0 * * *"), TimeZone: pulumi.String("Etc/UTC"), ConcurrencyPolicy: pulumi.String("Forbid"),
			SuccessfulJobsHistoryLimit: pulumi.Int(3), FailedJobsHistoryLimit: pulumi.Int(5),
			JobTemplate: batchv1.JobTemplateSpecArgs{Spec: batchv1.JobSpecArgs{BackoffLimit: pulumi.Int(2), ActiveDeadlineSeconds: pulumi.Int(600),
				Template: corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: labels}, Spec: pod.Spec()}}}}},
		opts...)
	return err
}
