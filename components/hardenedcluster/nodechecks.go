package hardenedcluster

import (
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
)

// NodeCheckArgs schedule the CIS 1.12 / KISA node check (package nodecheck) on every node pool.
type NodeCheckArgs struct {
	// Image runs kplane-nodecheck (cmd/kplane-nodecheck),
	// pinned by digest. Empty: no node checks.
	Image string `json:"image,omitempty"`
	// Schedule is the CronJob schedule (default "17 3 * * *": daily at 03:17).
	Schedule string `json:"schedule,omitempty"`
	// Pools: one CronJob per pool, Nodes pods per run, at most one per node.
	Pools []NodePool `json:"pools,omitempty"`
	// Paths override kubeadm's layout (other distributions keep kubelet files elsewhere).
	Paths *nodecheck.Paths `json:"paths,omitempty"`
}

// NodePool is a set of nodes the check runs on.
type NodePool struct {
	// Name of the pool (DNS-1123 label).
	Name string `json:"name"`
	// Selector is the pool's node labels, e.g. {"node.kubernetes.io/pool": "general"}.
	// Empty: every node.
	Selector map[string]string `json:"selector,omitempty"`
	// Nodes is the pool's size: the Job runs that many pods, one per node.
	Nodes int `json:"nodes"`
}

// NodeCheckNamespace holds the node checks and their reports (ConfigMaps node-check-<node>).
// It is exempt from the admission baseline: the check reads the host's files (read-only
// hostPath) as root. Nothing else runs there.
const NodeCheckNamespace = "kplane-node-checks"

func (a *Args) validateNodeChecks() field.ErrorList {
	nc, p := a.NodeChecks, field.Root().Child("nodeChecks")
	var errs field.ErrorList
	if nc.Image == "" {
		if len(nc.Pools) > 0 {
			errs.Add(field.Required(p.Child("image"), "with pools; build cmd/kplane-nodecheck into an image and give its digest"))
		}
		return errs
	}
	if !a.Admission.AllowImageTags && !addon.Pinned(nc.Image) {
		errs.Add(field.Invalid(p.Child("image"), nc.Image, "pin it by digest (image@sha256:...), as every image of the cluster"))
	}
	if nc.Schedule != "" && len(strings.Fields(nc.Schedule)) != 5 {
		errs.Add(field.Invalid(p.Child("schedule"), nc.Schedule, `a cron schedule of five fields, e.g. "17 3 * * *"`))
	}
	if len(nc.Pools) == 0 {
		errs.Add(field.Required(p.Child("pools"), `list the node pools to check, e.g. {name: general, nodes: 3}`))
	}
	seen := map[string]bool{}
	for i, pool := range nc.Pools {
		q := p.Child("pools").Index(i)
		if !dns1123Label.MatchString(pool.Name) || seen[pool.Name] {
			errs.Add(field.Invalid(q.Child("name"), pool.Name, "a DNS-1123 label, unique among the pools"))
		}
		seen[pool.Name] = true
		if pool.Nodes < 1 {
			errs.Add(field.Invalid(q.Child("nodes"), pool.Nodes, "the number of nodes in the pool (at least 1)"))
		}
	}
	return errs
}

// newNodeChecks creates the namespace, the checker's identity (it may only write its reports)
// and a CronJob per pool.
func newNodeChecks(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) error {
	nc := args.NodeChecks
	if nc.Image == "" {
		return nil
	}
	labels := pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), wellknown.NameLabel: pulumi.String("kplane-nodecheck")}
	ns, err := corev1.NewNamespace(ctx, name+"-node-checks", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{
		Name: pulumi.String(NodeCheckNamespace),
		Labels: pulumi.StringMap{
			wellknown.ManagedByLabel:                     pulumi.String("kplane"),
			"pod-security.kubernetes.io/enforce":         pulumi.String("privileged"), // read-only hostPath, as root
			"pod-security.kubernetes.io/enforce-version": pulumi.String(args.podSecurityVersion()),
			"pod-security.kubernetes.io/warn":            pulumi.String("baseline"),
			"pod-security.kubernetes.io/audit":           pulumi.String("baseline"),
		},
	}}, opts...)
	if err != nil {
		return err
	}
	after := append(opts, pulumi.DependsOn([]pulumi.Resource{ns}))
	meta := func(n string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(n), Namespace: pulumi.String(NodeCheckNamespace), Labels: labels}
	}
	if _, err := corev1.NewServiceAccount(ctx, name+"-node-check", &corev1.ServiceAccountArgs{Metadata: meta("kplane-node-check")}, after...); err != nil {
		return err
	}
	if _, err := rbacv1.NewRole(ctx, name+"-node-check", &rbacv1.RoleArgs{Metadata: meta("kplane-node-check"), Rules: rbacv1.PolicyRuleArray{
		rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{""}), Resources: pulumi.ToStringArray([]string{"configmaps"}), Verbs: pulumi.ToStringArray([]string{"create", "update"})},
	}}, after...); err != nil {
		return err
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name+"-node-check", &rbacv1.RoleBindingArgs{
		Metadata: meta("kplane-node-check"),
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: pulumi.String("kplane-node-check")},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String("kplane-node-check"), Namespace: pulumi.String(NodeCheckNamespace)}},
	}, after...); err != nil {
		return err
	}
	schedule := nc.Schedule
	if schedule == "" {
		schedule = "17 3 * * *"
	}
	checkArgs := []string{"--root=/host", "--report=" + NodeCheckNamespace}
	if p := nc.Paths; p != nil {
		checkArgs = append(checkArgs, "--kubelet-config="+p.KubeletConfig, "--kubelet-kubeconfig="+p.KubeletKubeconfig,
			"--kubelet-service="+p.KubeletService, "--manifests="+p.Manifests, "--pki="+p.PKI)
	}
	for _, pool := range nc.Pools {
		podLabels := pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-nodecheck"), wellknown.NodePoolLabel: pulumi.String(pool.Name)}
		var mounts corev1.VolumeMountArray
		var volumes corev1.VolumeArray
		for _, dir := range []string{"/etc", "/var/lib"} { // kubelet, kubernetes, systemd, passwd; kubelet and etcd data
			vol := strings.ReplaceAll(strings.TrimPrefix(dir, "/"), "/", "-")
			volumes = append(volumes, corev1.VolumeArgs{Name: pulumi.String(vol), HostPath: corev1.HostPathVolumeSourceArgs{Path: pulumi.String(dir), Type: pulumi.String("Directory")}})
			mounts = append(mounts, corev1.VolumeMountArgs{Name: pulumi.String(vol), MountPath: pulumi.String("/host" + dir), ReadOnly: pulumi.Bool(true)})
		}
		spec := corev1.PodSpecArgs{
			ServiceAccountName:           pulumi.String("kplane-node-check"),
			AutomountServiceAccountToken: pulumi.Bool(true), // to write its report
			RestartPolicy:                pulumi.String("Never"),
			NodeSelector:                 pulumi.ToStringMap(pool.Selector),
			Tolerations:                  corev1.TolerationArray{corev1.TolerationArgs{Operator: pulumi.String("Exists")}}, // control-plane and tainted nodes too
			Affinity: corev1.AffinityArgs{PodAntiAffinity: corev1.PodAntiAffinityArgs{
				RequiredDuringSchedulingIgnoredDuringExecution: corev1.PodAffinityTermArray{corev1.PodAffinityTermArgs{
					TopologyKey:   pulumi.String("kubernetes.io/hostname"),
					LabelSelector: metav1.LabelSelectorArgs{MatchLabels: podLabels},
				}},
			}},
			SecurityContext: corev1.PodSecurityContextArgs{SeccompProfile: corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")}},
			Containers: corev1.ContainerArray{corev1.ContainerArgs{
				Name:  pulumi.String("nodecheck"),
				Image: pulumi.String(nc.Image),
				Args:  pulumi.ToStringArray(checkArgs),
				Env: corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("NODE_NAME"), ValueFrom: corev1.EnvVarSourceArgs{
					FieldRef: corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("spec.nodeName")},
				}}},
				VolumeMounts: mounts,
				// Root, to read root-only files; nothing else: no capabilities, read-only everything.
				SecurityContext: corev1.SecurityContextArgs{
					RunAsUser: pulumi.Int(0), RunAsNonRoot: pulumi.Bool(false), ReadOnlyRootFilesystem: pulumi.Bool(true),
					AllowPrivilegeEscalation: pulumi.Bool(false), Capabilities: corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
				},
				Resources: corev1.ResourceRequirementsArgs{
					Requests: pulumi.StringMap{"cpu": pulumi.String("10m"), "memory": pulumi.String("32Mi")},
					Limits:   pulumi.StringMap{"cpu": pulumi.String("200m"), "memory": pulumi.String("64Mi")},
				},
			}},
			Volumes: volumes,
		}
		if _, err := batchv1.NewCronJob(ctx, name+"-node-check-"+pool.Name, &batchv1.CronJobArgs{
			Metadata: meta("node-check-" + pool.Name),
			Spec: batchv1.CronJobSpecArgs{
				Schedule:                   pulumi.String(schedule),
				ConcurrencyPolicy:          pulumi.String("Forbid"),
				SuccessfulJobsHistoryLimit: pulumi.Int(3),
				FailedJobsHistoryLimit:     pulumi.Int(3),
				JobTemplate: batchv1.JobTemplateSpecArgs{Spec: batchv1.JobSpecArgs{
					Parallelism:             pulumi.Int(pool.Nodes),
					Completions:             pulumi.Int(pool.Nodes),
					BackoffLimit:            pulumi.Int(2),
					ActiveDeadlineSeconds:   pulumi.Int(900),
					TtlSecondsAfterFinished: pulumi.Int(7 * 24 * 3600),
					Template:                corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: podLabels}, Spec: spec},
				}},
			},
		}, after...); err != nil {
			return err
		}
	}
	return nil
}
