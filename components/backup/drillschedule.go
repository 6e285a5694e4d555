package backup

import (
	"cmp"
	"slices"
	"strings"
	"time"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/backup/drill"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/jobpod"
	"github.com/kplane/kplane/internal/k8sobj"
)

// RestoreDrillArgs schedule `kplane-backup drill` (docs/runbooks/restore-test.md) for namespaces.
type RestoreDrillArgs struct {
	// Image of kplane-backup, by digest.
	Image string `json:"image"`
	// Schedule in cron syntax (default weekly, Sunday 04:00).
	Schedule string `json:"schedule,omitempty"`
	// Namespaces drilled, each from its latest backup into <namespace>-drill.
	Namespaces []string `json:"namespaces"`
	// Storage is the Velero location's bucket (its prefix and endpoint); CredentialsSecret here
	// has AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY that read the prefix and write under
	// kplane-drills/<prefix>/ (each drill's evidence).
	Bucket            string `json:"bucket"`
	Prefix            string `json:"prefix"`
	S3Endpoint        string `json:"s3Endpoint,omitempty"`
	CredentialsSecret string `json:"credentialsSecret"`
	// S3CAConfigMap names a ConfigMap in Velero's namespace whose ca.crt signed the store's
	// certificate (a private CA; Velero's Storage.CACert).
	S3CAConfigMap string `json:"s3CAConfigMap,omitempty"`
	// VeleroNamespace (default velero): the drill runs there.
	VeleroNamespace string `json:"veleroNamespace,omitempty"`
	// Resources the drill verifies besides DrillResources, as "group/resource" (custom
	// resources your namespaces hold, e.g. "shop.example.com/orders"). The drill reads, and
	// deletes after the check, only these kinds and only in its scratch namespaces; a backup
	// holding a kind it may not read fails the drill, naming the kind.
	Resources []string `json:"resources,omitempty"`
}

// DrillResources are the kinds a restore drill verifies (and removes again) in its scratch
// namespaces: what applications are made of, Secrets included. Nothing outside the scratch
// namespaces.
var DrillResources = []string{"configmaps", "secrets", "services", "serviceaccounts", "persistentvolumeclaims", "pods",
	"replicationcontrollers", "limitranges", "resourcequotas", "podtemplates",
	"apps/deployments", "apps/statefulsets", "apps/daemonsets", "apps/replicasets", "apps/controllerrevisions",
	"batch/jobs", "batch/cronjobs", "networking.k8s.io/ingresses", "networking.k8s.io/networkpolicies",
	"rbac.authorization.k8s.io/roles", "rbac.authorization.k8s.io/rolebindings", "policy/poddisruptionbudgets",
	"autoscaling/horizontalpodautoscalers"}

// drillRules are DrillResources and extra as RBAC rules (get, list, delete), one per API group.
func drillRules(extra []string) rbacv1.PolicyRuleArray {
	byGroup := map[string][]string{}
	var groups []string
	for _, r := range append(slices.Clone(DrillResources), extra...) {
		group, resource, ok := strings.Cut(r, "/")
		if !ok {
			group, resource = "", r
		}
		if byGroup[group] == nil {
			groups = append(groups, group)
		}
		if !slices.Contains(byGroup[group], resource) {
			byGroup[group] = append(byGroup[group], resource)
		}
	}
	var rules rbacv1.PolicyRuleArray
	for _, g := range groups {
		rules = append(rules, rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{g}), Resources: pulumi.ToStringArray(byGroup[g]),
			Verbs: pulumi.ToStringArray([]string{"get", "list", "delete"})})
	}
	return rules
}

// Validate names the argument and the fix.
func (a RestoreDrillArgs) Validate() error {
	var errs field.ErrorList
	if !addon.Pinned(a.Image) {
		errs.Add(field.Invalid(field.At("restoreDrill.image"), a.Image, "pin kplane-backup by digest"))
	}
	if len(a.Namespaces) == 0 {
		errs.Add(field.Invalid(field.At("restoreDrill.namespaces"), nil, "at least one namespace to drill"))
	}
	if a.Bucket == "" || a.Prefix == "" {
		errs.Add(field.Required(field.At("restoreDrill.bucket"), "bucket and prefix: the Velero location's (the drill reads the backups' content there)"))
	}
	if a.CredentialsSecret == "" {
		errs.Add(field.Required(field.At("restoreDrill.credentialsSecret"), "read access to the bucket"))
	}
	if a.Schedule != "" && (len(strings.Fields(a.Schedule)) != 5 || drill.CronGap(a.Schedule, time.Now()) == 0) {
		errs.Add(field.Invalid(field.At("restoreDrill.schedule"), a.Schedule, "five cron fields"))
	}
	for i, ns := range a.Namespaces {
		if !dnsName.MatchString(ns) || len(ns) > 57 {
			errs.Add(field.Invalid(field.At("restoreDrill.namespaces[%d]", i), ns, "a namespace name of at most 57 characters (the drill adds -drill)"))
		}
	}
	for i, r := range a.Resources {
		group, resource, ok := strings.Cut(r, "/")
		if !ok {
			group, resource = "", r
		}
		if strings.Contains(r, "*") || !dnsName.MatchString(resource) || (group != "" && !strings.Contains(group, ".")) {
			errs.Add(field.Invalid(field.At("restoreDrill.resources[%d]", i), r, "name one resource as group/resource, e.g. \"shop.example.com/orders\" (no wildcards)"))
		}
	}
	return errs.OrNil()
}

// bucketCredentials are the environment variables of a bucket's credentials, from the Secret
// whose keys are the AWS SDK's variable names (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
func bucketCredentials(secret string) corev1.EnvVarArray {
	return corev1.EnvVarArray{jobpod.SecretEnv("AWS_ACCESS_KEY_ID", secret, "AWS_ACCESS_KEY_ID"),
		jobpod.SecretEnv("AWS_SECRET_ACCESS_KEY", secret, "AWS_SECRET_ACCESS_KEY")}
}

// s3CA mounts a ConfigMap's ca.crt and is the flag that trusts it (--s3-ca).
func s3CA(configMap string) (string, corev1.VolumeArgs, corev1.VolumeMountArgs) {
	return "--s3-ca=/etc/kplane/s3-ca/ca.crt",
		corev1.VolumeArgs{Name: pulumi.String("s3-ca"), ConfigMap: corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(configMap),
			Items: corev1.KeyToPathArray{corev1.KeyToPathArgs{Key: pulumi.String("ca.crt"), Path: pulumi.String("ca.crt")}}}},
		corev1.VolumeMountArgs{Name: pulumi.String("s3-ca"), MountPath: pulumi.String("/etc/kplane/s3-ca"), ReadOnly: pulumi.Bool(true)}
}

// withDefaults fills the weekly schedule (Sunday 04:00) and Velero's namespace.
func (a RestoreDrillArgs) withDefaults() RestoreDrillArgs {
	a.Schedule = cmp.Or(a.Schedule, "0 4 * * 0")
	a.VeleroNamespace = cmp.Or(a.VeleroNamespace, "velero")
	return a
}

// RestoreDrill is the scheduled drill.
type RestoreDrill struct{ pulumi.ResourceState }

// NewRestoreDrill registers a CronJob per namespace and the ServiceAccount they run as, the
// scratch namespaces <namespace>-drill, and in Velero's namespace the ConfigMap per namespace
// that holds its latest evidence (drill.EvidenceConfigMap; the fleet's alerts read it). The
// account creates Restores, reads Backups and Schedules and updates those ConfigMaps in
// Velero's namespace, and in each scratch namespace alone (a RoleBinding there) reads and
// deletes the kinds it verifies (DrillResources and Resources; the inventory compares Secrets'
// data too). It has no right outside those namespaces.
func NewRestoreDrill(ctx *pulumi.Context, name string, args *RestoreDrillArgs, opts ...pulumi.ResourceOption) (*RestoreDrill, error) {
	r := &RestoreDrill{}
	args, err := component.Register(ctx, "RestoreDrill", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	a := args.withDefaults()
	parent := pulumi.Parent(r)
	const account = "kplane-restore-drill"
	labels := pulumi.StringMap{wellknown.NameLabel: pulumi.String(account), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}
	meta := &metav1.ObjectMetaArgs{Name: pulumi.String(account), Namespace: pulumi.String(a.VeleroNamespace), Labels: labels}
	if _, err := corev1.NewServiceAccount(ctx, name, &corev1.ServiceAccountArgs{Metadata: meta, AutomountServiceAccountToken: pulumi.Bool(false)}, parent); err != nil {
		return nil, err
	}
	rule := func(groups, resources, verbs []string) rbacv1.PolicyRuleArgs {
		return rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray(groups), Resources: pulumi.ToStringArray(resources), Verbs: pulumi.ToStringArray(verbs)}
	}
	// Bound in the scratch namespaces only (RoleBindings there), never cluster-wide.
	if _, err := rbacv1.NewClusterRole(ctx, name, &rbacv1.ClusterRoleArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(account), Labels: labels,
		Annotations: pulumi.StringMap{wellknown.SecretsReadReasonAnnotation: pulumi.String("verifies the restored Secrets; bound by RoleBinding in the drill's scratch namespaces only")}},
		Rules: drillRules(a.Resources)}, parent); err != nil {
		return nil, err
	}
	if err := scratchNamespaces(ctx, name, account, a, labels, parent); err != nil {
		return nil, err
	}
	evidence, err := evidenceConfigMaps(ctx, name, a, parent)
	if err != nil {
		return nil, err
	}
	if _, err := rbacv1.NewRole(ctx, name, &rbacv1.RoleArgs{Metadata: meta, Rules: rbacv1.PolicyRuleArray{
		rule([]string{"velero.io"}, []string{"restores"}, []string{"create", "get"}),
		rule([]string{"velero.io"}, []string{"backups"}, []string{"get", "list", "patch"}),
		rule([]string{"velero.io"}, []string{"schedules"}, []string{"get"}),
		rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{""}), Resources: pulumi.ToStringArray([]string{"configmaps"}),
			ResourceNames: pulumi.ToStringArray(evidence), Verbs: pulumi.ToStringArray([]string{"get", "update"})},
	}}, parent); err != nil {
		return nil, err
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name, &rbacv1.RoleBindingArgs{Metadata: meta,
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: pulumi.String(account)},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(account), Namespace: pulumi.String(a.VeleroNamespace)}}}, parent); err != nil {
		return nil, err
	}
	credentials := bucketCredentials(a.CredentialsSecret)
	for _, ns := range a.Namespaces {
		cmd := []string{"drill", "--backup=latest", "--namespace=" + ns, "--velero-namespace=" + a.VeleroNamespace, "--bucket=" + a.Bucket, "--prefix=" + a.Prefix,
			"--window=" + drill.CronGap(a.Schedule, time.Now()).String()}
		if a.S3Endpoint != "" {
			cmd = append(cmd, "--s3-endpoint="+a.S3Endpoint)
		}
		p := jobpod.Pod{Name: "kplane-restore-drill", Image: a.Image, ServiceAccount: account, Token: true, Env: credentials}
		if a.S3CAConfigMap != "" {
			flag, vol, mount := s3CA(a.S3CAConfigMap)
			cmd, p.Volumes, p.Mounts = append(cmd, flag), corev1.VolumeArray{vol}, corev1.VolumeMountArray{mount}
		}
		p.Args = cmd
		pod := p.Spec()
		if _, err := batchv1.NewCronJob(ctx, name+"-"+ns, &batchv1.CronJobArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(account + "-" + ns), Namespace: pulumi.String(a.VeleroNamespace), Labels: labels},
			Spec: batchv1.CronJobSpecArgs{Schedule: pulumi.String(a.Schedule), ConcurrencyPolicy: pulumi.String("Forbid"),
				SuccessfulJobsHistoryLimit: pulumi.Int(5), FailedJobsHistoryLimit: pulumi.Int(5),
				JobTemplate: batchv1.JobTemplateSpecArgs{Spec: batchv1.JobSpecArgs{BackoffLimit: pulumi.Int(0), ActiveDeadlineSeconds: pulumi.Int(3600),
					Template: corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: labels}, Spec: pod}}}}}, parent); err != nil {
			return nil, err
		}
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{})
}

// evidenceConfigMaps registers the ConfigMap per drilled namespace, in Velero's namespace, that
// holds its latest evidence, and returns their names. The drill writes their data; Pulumi owns
// the rest (and ignores the data).
func evidenceConfigMaps(ctx *pulumi.Context, name string, a RestoreDrillArgs, parent pulumi.ResourceOption) ([]string, error) {
	var names []string
	for _, ns := range a.Namespaces {
		names = append(names, drill.EvidenceConfigMap(ns))
		if _, err := corev1.NewConfigMap(ctx, name+"-"+drill.EvidenceConfigMap(ns), &corev1.ConfigMapArgs{Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(drill.EvidenceConfigMap(ns)), Namespace: pulumi.String(a.VeleroNamespace),
			Labels:      pulumi.StringMap{wellknown.DrillOfLabel: pulumi.String(ns), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)},
			Annotations: pulumi.StringMap{wellknown.DrillScheduleAnnotation: pulumi.String(a.Schedule)}}},
			parent, pulumi.IgnoreChanges([]string{"data"})); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// scratchNamespaces registers each drilled namespace's scratch namespace, <namespace>-drill, and
// in it alone the RoleBinding that lets the drill's account read and delete what it restored.
func scratchNamespaces(ctx *pulumi.Context, name, account string, a RestoreDrillArgs, labels pulumi.StringMap, parent pulumi.ResourceOption) error {
	for _, ns := range a.Namespaces {
		scratch := ns + "-drill"
		nsRes, err := corev1.NewNamespace(ctx, name+"-"+scratch, &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(scratch),
			Labels: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), wellknown.DrillOfLabel: pulumi.String(ns),
				// Baseline enforced (a restored copy runs nothing privileged), restricted reported: the
				// drill restores what the backup holds, which may predate restricted.
				"pod-security.kubernetes.io/enforce": pulumi.String("baseline"), "pod-security.kubernetes.io/enforce-version": pulumi.String(k8sobj.PodSecurityVersion),
				"pod-security.kubernetes.io/warn": pulumi.String("restricted"), "pod-security.kubernetes.io/audit": pulumi.String("restricted")}}}, parent)
		if err != nil {
			return err
		}
		if _, err := rbacv1.NewRoleBinding(ctx, name+"-"+scratch, &rbacv1.RoleBindingArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(drill.AccessBinding), Namespace: nsRes.Metadata.Name().Elem(), Labels: labels},
			RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String(account)},
			Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(account), Namespace: pulumi.String(a.VeleroNamespace)}}}, parent); err != nil {
			return err
		}
	}
	return nil
}
