package backup

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/backup/csisnap"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/jobpod"
	"github.com/kplane/kplane/internal/k8sobj"
)

// CSISnapshotsArgs: a VolumeSnapshotClass Velero uses for CSI snapshots, and scheduled
// snapshots of selected claims with retention (kplane-backup snapshot in a CronJob).
type CSISnapshotsArgs struct {
	// Image of kplane-backup (cmd/kplane-backup), by digest.
	Image string `json:"image"`
	// Class, when set, is created and labelled for Velero (velero.io/csi-volumesnapshot-class),
	// and beside it <name>-scheduled, the same driver with deletionPolicy Delete: the class of
	// the scheduled snapshots, so pruning one frees the storage's snapshot too.
	Class *SnapshotClass `json:"class,omitempty"`
	// Policies: claims by namespace and labels, a cron schedule, how many ready snapshots stay.
	Policies []SnapshotPolicy `json:"policies,omitempty"`
}

// SnapshotClass is a VolumeSnapshotClass.
type SnapshotClass struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// DeletionPolicy (default Retain: deleting the object keeps the storage's snapshot, as
	// Velero needs: it deletes its VolumeSnapshots once their contents are recorded).
	DeletionPolicy string `json:"deletionPolicy,omitempty"`
}

// scheduledClass is the class the policies use when they name none ("" without Class).
func (a CSISnapshotsArgs) scheduledClass() string {
	if a.Class == nil {
		return ""
	}
	return a.Class.Name + "-scheduled"
}

// classOf is the class policy p snapshots with.
func (a CSISnapshotsArgs) classOf(p SnapshotPolicy) string {
	return cmp.Or(p.Class, a.scheduledClass())
}

// SnapshotPolicy is one scheduled snapshot policy.
type SnapshotPolicy struct {
	csisnap.Policy
	Schedule string `json:"schedule"`
}

// Validate names the argument and the fix.
func (a CSISnapshotsArgs) Validate() error {
	var errs field.ErrorList
	if !addon.Pinned(a.Image) {
		errs.Add(field.Invalid(field.At("csiSnapshots.image"), a.Image, "pin kplane-backup by digest"))
	}
	if c := a.Class; c != nil {
		if !dnsName.MatchString(c.Name) || c.Driver == "" {
			errs.Add(field.Invalid(field.At("csiSnapshots.class"), nil, "name (DNS label) and driver (the CSI driver, e.g. ebs.csi.aws.com) are required"))
		}
		if c.DeletionPolicy != "" && c.DeletionPolicy != "Retain" && c.DeletionPolicy != "Delete" {
			errs.Add(field.Invalid(field.At("csiSnapshots.class.deletionPolicy"), c.DeletionPolicy, "Retain or Delete"))
		}
	}
	seen := map[string]bool{}
	for i, p := range a.Policies {
		if !dnsName.MatchString(p.Name) || seen[p.Name] {
			errs.Add(field.Invalid(field.At("csiSnapshots.policies[%d].name", i), p.Name, "unique, lower-case letters, digits and dashes"))
		}
		if p.Namespace == "" {
			errs.Add(field.Required(field.At("csiSnapshots.policies[%d].namespace", i), "the namespace whose claims are snapshotted"))
		}
		if len(strings.Fields(p.Schedule)) != 5 {
			errs.Add(field.Invalid(field.At("csiSnapshots.policies[%d].schedule", i), p.Schedule, "five cron fields"))
		}
		switch {
		case p.Class == "" && a.Class == nil:
			errs.Add(field.Required(field.At("csiSnapshots.policies[%d].class", i), "a VolumeSnapshotClass with deletionPolicy Delete (pruning must free the storage), or set csiSnapshots.class and kplane creates one"))
		case a.Class != nil && p.Class == a.Class.Name && a.Class.DeletionPolicy != "Delete":
			errs.Add(field.Invalid(field.At("csiSnapshots.policies[%d].class", i), p.Class, fmt.Sprintf("Velero's class keeps the storage's snapshot when one is pruned (deletionPolicy Retain); leave class empty for %s (deletionPolicy Delete)", a.scheduledClass())))
		}
		if p.Keep < 1 {
			errs.Add(field.Invalid(field.At("csiSnapshots.policies[%d].keep", i), p.Keep, "at least one snapshot"))
		}
		seen[p.Name] = true
	}
	return errs.OrNil()
}

// CSISnapshots is the snapshot class and policies.
type CSISnapshots struct{ pulumi.ResourceState }

// NewCSISnapshots registers the classes and, per policy, a ServiceAccount allowed only to list
// claims and create, list and delete snapshots in its namespace (and read its class), and a
// CronJob.
func NewCSISnapshots(ctx *pulumi.Context, name string, args *CSISnapshotsArgs, opts ...pulumi.ResourceOption) (*CSISnapshots, error) {
	r := &CSISnapshots{}
	args, err := component.Register(ctx, "CSISnapshots", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	parent := pulumi.Parent(r)
	if err := newSnapshotClasses(ctx, name, args, parent); err != nil {
		return nil, err
	}
	if err := newClassReader(ctx, name, args, parent); err != nil {
		return nil, err
	}
	for _, p := range args.Policies {
		p.Class = args.classOf(p)
		account := "kplane-snapshot-" + p.Name
		meta := &metav1.ObjectMetaArgs{Name: pulumi.String(account), Namespace: pulumi.String(p.Namespace),
			Labels: pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-snapshot"), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}
		if _, err := corev1.NewServiceAccount(ctx, name+"-"+p.Name, &corev1.ServiceAccountArgs{Metadata: meta, AutomountServiceAccountToken: pulumi.Bool(false)}, parent); err != nil {
			return nil, err
		}
		if _, err := rbacv1.NewRole(ctx, name+"-"+p.Name, &rbacv1.RoleArgs{Metadata: meta, Rules: rbacv1.PolicyRuleArray{
			rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{""}), Resources: pulumi.ToStringArray([]string{"persistentvolumeclaims"}), Verbs: pulumi.ToStringArray([]string{"list"})},
			rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{"snapshot.storage.k8s.io"}), Resources: pulumi.ToStringArray([]string{"volumesnapshots"}),
				Verbs: pulumi.ToStringArray([]string{"create", "list", "delete"})}}}, parent); err != nil {
			return nil, err
		}
		if _, err := rbacv1.NewRoleBinding(ctx, name+"-"+p.Name, &rbacv1.RoleBindingArgs{Metadata: meta,
			RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: pulumi.String(account)},
			Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(account), Namespace: pulumi.String(p.Namespace)}}}, parent); err != nil {
			return nil, err
		}
		cmd := []string{"snapshot", "--policy=" + p.Name, "--namespace=" + p.Namespace, fmt.Sprintf("--keep=%d", p.Keep)}
		if len(p.Selector) > 0 {
			var kv []string
			for k, v := range p.Selector {
				kv = append(kv, k+"="+v)
			}
			sort.Strings(kv)
			cmd = append(cmd, "--selector="+strings.Join(kv, ","))
		}
		if p.Class != "" {
			cmd = append(cmd, "--class="+p.Class)
		}
		pod := jobpod.Pod{Name: "kplane-snapshot", Image: args.Image, ServiceAccount: account, Token: true, Args: cmd}.Spec()
		if _, err := batchv1.NewCronJob(ctx, name+"-"+p.Name, &batchv1.CronJobArgs{Metadata: meta, Spec: batchv1.CronJobSpecArgs{
			Schedule: pulumi.String(p.Schedule), ConcurrencyPolicy: pulumi.String("Forbid"), SuccessfulJobsHistoryLimit: pulumi.Int(3), FailedJobsHistoryLimit: pulumi.Int(5),
			JobTemplate: batchv1.JobTemplateSpecArgs{Spec: batchv1.JobSpecArgs{BackoffLimit: pulumi.Int(2), Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-snapshot")}}, Spec: pod}}}}}, parent); err != nil {
			return nil, err
		}
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{})
}

// newSnapshotClasses creates Velero's class and the scheduled snapshots' (Delete) beside it.
func newSnapshotClasses(ctx *pulumi.Context, name string, args *CSISnapshotsArgs, parent pulumi.ResourceOption) error {
	c := args.Class
	if c == nil {
		return nil
	}
	for _, class := range []struct{ suffix, name, policy, velero string }{
		{"-class", c.Name, cmp.Or(c.DeletionPolicy, "Retain"), "true"},
		{"-scheduled-class", args.scheduledClass(), "Delete", ""},
	} {
		labels := map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy}
		if class.velero != "" {
			labels["velero.io/csi-volumesnapshot-class"] = class.velero
		}
		if _, err := k8sobj.Object(ctx, name+class.suffix, map[string]any{"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
			"metadata": map[string]any{"name": class.name, "labels": labels}, "driver": c.Driver, "deletionPolicy": class.policy}, parent); err != nil {
			return err
		}
	}
	return nil
}

// newClassReader lets the policies' ServiceAccounts read their classes, and only those:
// kplane-backup snapshot refuses a class that would keep pruned snapshots' storage.
func newClassReader(ctx *pulumi.Context, name string, args *CSISnapshotsArgs, parent pulumi.ResourceOption) error {
	if len(args.Policies) == 0 {
		return nil
	}
	var classes []string
	var subjects rbacv1.SubjectArray
	for _, p := range args.Policies {
		if class := args.classOf(p); !slices.Contains(classes, class) {
			classes = append(classes, class)
		}
		subjects = append(subjects, rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String("kplane-snapshot-" + p.Name), Namespace: pulumi.String(p.Namespace)})
	}
	sort.Strings(classes)
	meta := &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-snapshot-classes-" + name),
		Labels: pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-snapshot"), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}
	if _, err := rbacv1.NewClusterRole(ctx, name+"-classes", &rbacv1.ClusterRoleArgs{Metadata: meta, Rules: rbacv1.PolicyRuleArray{rbacv1.PolicyRuleArgs{
		ApiGroups: pulumi.ToStringArray([]string{"snapshot.storage.k8s.io"}), Resources: pulumi.ToStringArray([]string{"volumesnapshotclasses"}),
		ResourceNames: pulumi.ToStringArray(classes), Verbs: pulumi.ToStringArray([]string{"get"})}}}, parent); err != nil {
		return err
	}
	_, err := rbacv1.NewClusterRoleBinding(ctx, name+"-classes", &rbacv1.ClusterRoleBindingArgs{Metadata: meta, Subjects: subjects,
		RoleRef: rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String("kplane-snapshot-classes-" + name)}}, parent)
	return err
}
