package backup

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NFSStoreArgs: a backup location on an NFS export, for sites with NFS and no object storage.
// Velero keeps backups in object storage only, so the store is an S3-compatible server in the
// cluster (SeaweedFS `weed mini`: S3 with SigV4 authentication, one identity) whose data
// directory is the export. Velero's location points at it: Storage{URL: store.URL, Bucket: ...}.
type NFSStoreArgs struct {
	// Namespace of the store (default velero: Velero's own).
	Namespace string `json:"namespace,omitempty"`
	// Server and Path of the NFS export; it must be writable by RunAsUser.
	Server string `json:"server"`
	Path   string `json:"path"`
	// MountOptions (default nfsvers=4.1, hard: a server outage stalls writes rather than failing them).
	MountOptions []string `json:"mountOptions,omitempty"`
	// Capacity of the PersistentVolume (default 500Gi; NFS does not enforce it).
	Capacity string `json:"capacity,omitempty"`
	// Image of SeaweedFS by digest (e.g. chrislusf/seaweedfs@sha256:...).
	Image string `json:"image"`
	// Bucket created at start (default velero); no other bucket is created on demand.
	Bucket string `json:"bucket,omitempty"`
	// CredentialsSecret names a Secret in the namespace with AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY: the store's only identity. Velero's "cloud" file holds the same pair.
	CredentialsSecret string `json:"credentialsSecret"`
	// TLSSecret names a kubernetes.io/tls Secret in the namespace: S3 is then served over HTTPS
	// with it (give Velero's Storage.CACert its CA). Without it the store speaks plain HTTP.
	TLSSecret string `json:"tlsSecret,omitempty"`
	// RunAsUser owns the files on the export (default 65532).
	RunAsUser int `json:"runAsUser,omitempty"`
	// Clients: the namespaces allowed to reach the store (default: its own).
	Clients []string `json:"clients,omitempty"`
}

var nfsServer = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$`)

// Validate names the argument and the fix.
func (a NFSStoreArgs) Validate() error {
	var errs field.ErrorList
	if !nfsServer.MatchString(a.Server) {
		errs.Add(field.Invalid(field.At("nfsStore.server"), a.Server, "the NFS server's host name or IP address"))
	}
	if !path.IsAbs(a.Path) || path.Clean(a.Path) != a.Path {
		errs.Add(field.Invalid(field.At("nfsStore.path"), a.Path, "the export's absolute path, e.g. /exports/backups"))
	}
	if !addon.Pinned(a.Image) {
		errs.Add(field.Invalid(field.At("nfsStore.image"), a.Image, "pin SeaweedFS by digest (chrislusf/seaweedfs@sha256:...)"))
	}
	if a.CredentialsSecret == "" {
		errs.Add(field.Required(field.At("nfsStore.credentialsSecret"), "a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: without an identity the store would accept anyone"))
	}
	if a.TLSSecret != "" && !dnsName.MatchString(a.TLSSecret) {
		errs.Add(field.Invalid(field.At("nfsStore.tlsSecret"), a.TLSSecret, "a Secret's name"))
	}
	if a.Bucket != "" && !dnsName.MatchString(a.Bucket) {
		errs.Add(field.Invalid(field.At("nfsStore.bucket"), a.Bucket, "lower-case letters, digits and dashes"))
	}
	if a.RunAsUser < 0 {
		errs.Add(field.Invalid(field.At("nfsStore.runAsUser"), a.RunAsUser, "the uid owning the export's files (not root)"))
	}
	for i, c := range a.Clients {
		if !dnsName.MatchString(c) {
			errs.Add(field.Invalid(field.At("nfsStore.clients[%d]", i), c, "a namespace name"))
		}
	}
	return errs.OrNil()
}

func (a NFSStoreArgs) withDefaults() NFSStoreArgs {
	if a.Namespace == "" {
		a.Namespace = "velero"
	}
	if len(a.MountOptions) == 0 {
		a.MountOptions = []string{"nfsvers=4.1", "hard"}
	}
	if a.Capacity == "" {
		a.Capacity = "500Gi"
	}
	if a.Bucket == "" {
		a.Bucket = "velero"
	}
	if a.RunAsUser == 0 {
		a.RunAsUser = 65532
	}
	if len(a.Clients) == 0 {
		a.Clients = []string{a.Namespace}
	}
	return a
}

// NFSStorePort is the store's S3 port.
const NFSStorePort = 8333

// NFSStoreFlags are the flags of `weed mini` in the store (besides its data directory and
// addresses): the one bucket, no bucket created on demand (a mistyped bucket is an error, not
// a new bucket), no WebDAV, admin UI or table catalogs.
func NFSStoreFlags(bucket string) []string {
	return []string{"mini", "-bucket=" + bucket, "-s3.autoCreateBucket=false", "-webdav=false", "-admin.ui=false",
		"-s3.port.iceberg=0", "-s3.port.lance=0"}
}

// NFSStore is the store; URL and Bucket are for Velero's Storage.
type NFSStore struct {
	pulumi.ResourceState
	URL    pulumi.StringOutput `pulumi:"url"`
	Bucket pulumi.StringOutput `pulumi:"bucket"`
}

// NewNFSStore validates args, then registers the export's PersistentVolume and claim, the
// store's Deployment and Service, and a NetworkPolicy admitting the clients to S3 only.
func NewNFSStore(ctx *pulumi.Context, name string, args *NFSStoreArgs, opts ...pulumi.ResourceOption) (*NFSStore, error) {
	r := &NFSStore{}
	args, err := component.Register(ctx, "NFSStore", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	if !dnsName.MatchString(name) {
		return nil, fmt.Errorf("backup %q: the store's name names its objects: lower-case letters, digits and dashes", name)
	}
	a := args.withDefaults()
	parent := pulumi.Parent(r)
	labels := pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-nfs-store"), "app.kubernetes.io/instance": pulumi.String(name)}
	meta := func(n string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(n), Namespace: pulumi.String(a.Namespace),
			Labels: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), wellknown.NameLabel: pulumi.String("kplane-nfs-store")}}
	}
	// The volume is bound to its claim alone and kept when the claim goes: it is the backups.
	pvName := a.Namespace + "-" + name
	pv, err := corev1.NewPersistentVolume(ctx, name+"-pv", &corev1.PersistentVolumeArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(pvName), Labels: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}},
		Spec: corev1.PersistentVolumeSpecArgs{
			Capacity: pulumi.StringMap{"storage": pulumi.String(a.Capacity)}, AccessModes: pulumi.ToStringArray([]string{"ReadWriteMany"}),
			PersistentVolumeReclaimPolicy: pulumi.String("Retain"), StorageClassName: pulumi.String(""), MountOptions: pulumi.ToStringArray(a.MountOptions),
			Nfs:      corev1.NFSVolumeSourceArgs{Server: pulumi.String(a.Server), Path: pulumi.String(a.Path)},
			ClaimRef: corev1.ObjectReferenceArgs{Namespace: pulumi.String(a.Namespace), Name: pulumi.String(name)},
		}}, parent, pulumi.RetainOnDelete(true))
	if err != nil {
		return nil, err
	}
	pvc, err := corev1.NewPersistentVolumeClaim(ctx, name+"-pvc", &corev1.PersistentVolumeClaimArgs{Metadata: meta(name),
		Spec: corev1.PersistentVolumeClaimSpecArgs{AccessModes: pulumi.ToStringArray([]string{"ReadWriteMany"}), StorageClassName: pulumi.String(""),
			VolumeName: pulumi.String(pvName), Resources: corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(a.Capacity)}}}},
		parent, pulumi.DependsOn([]pulumi.Resource{pv}))
	if err != nil {
		return nil, err
	}
	// The data directory is /data (the image's filer.toml keeps the filer's metadata there too).
	flags := append(NFSStoreFlags(a.Bucket), "-dir=/data", "-ip=127.0.0.1", "-ip.bind=0.0.0.0", fmt.Sprintf("-s3.port=%d", NFSStorePort))
	scheme := "http"
	mounts := corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String("/data")},
		corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")}}
	volumes := corev1.VolumeArray{
		corev1.VolumeArgs{Name: pulumi.String("data"), PersistentVolumeClaim: corev1.PersistentVolumeClaimVolumeSourceArgs{ClaimName: pulumi.String(name)}},
		corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: corev1.EmptyDirVolumeSourceArgs{}}}
	if a.TLSSecret != "" {
		scheme = "https"
		flags = append(flags, "-s3.cert.file=/tls/tls.crt", "-s3.key.file=/tls/tls.key")
		mounts = append(mounts, corev1.VolumeMountArgs{Name: pulumi.String("tls"), MountPath: pulumi.String("/tls"), ReadOnly: pulumi.Bool(true)})
		volumes = append(volumes, corev1.VolumeArgs{Name: pulumi.String("tls"), Secret: corev1.SecretVolumeSourceArgs{SecretName: pulumi.String(a.TLSSecret)}})
	}
	probe := corev1.ProbeArgs{HttpGet: corev1.HTTPGetActionArgs{Path: pulumi.String("/healthz"), Port: pulumi.Int(NFSStorePort), Scheme: pulumi.String(strings.ToUpper(scheme))},
		PeriodSeconds: pulumi.Int(10)}
	if _, err := appsv1.NewDeployment(ctx, name, &appsv1.DeploymentArgs{Metadata: meta(name), Spec: appsv1.DeploymentSpecArgs{
		// One writer on the export at a time: replaced, never rolled.
		Replicas: pulumi.Int(1), Strategy: appsv1.DeploymentStrategyArgs{Type: pulumi.String("Recreate")},
		Selector: &metav1.LabelSelectorArgs{MatchLabels: labels},
		Template: corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: labels}, Spec: corev1.PodSpecArgs{
			AutomountServiceAccountToken: pulumi.Bool(false),
			SecurityContext: corev1.PodSecurityContextArgs{RunAsNonRoot: pulumi.Bool(true), RunAsUser: pulumi.Int(a.RunAsUser), RunAsGroup: pulumi.Int(a.RunAsUser),
				SeccompProfile: corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")}},
			Containers: corev1.ContainerArray{corev1.ContainerArgs{
				Name: pulumi.String("seaweedfs"), Image: pulumi.String(a.Image), Args: pulumi.ToStringArray(flags),
				Env:            bucketCredentials(a.CredentialsSecret), // the store's one identity
				Ports:          corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String("s3"), ContainerPort: pulumi.Int(NFSStorePort)}},
				ReadinessProbe: probe, LivenessProbe: probe,
				VolumeMounts: mounts,
				SecurityContext: corev1.SecurityContextArgs{AllowPrivilegeEscalation: pulumi.Bool(false), ReadOnlyRootFilesystem: pulumi.Bool(true),
					Capabilities: corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})}},
				Resources: corev1.ResourceRequirementsArgs{Requests: pulumi.StringMap{"cpu": pulumi.String("100m"), "memory": pulumi.String("256Mi")},
					Limits: pulumi.StringMap{"memory": pulumi.String("1Gi")}},
			}},
			Volumes: volumes,
		}}}}, parent, pulumi.DependsOn([]pulumi.Resource{pvc})); err != nil {
		return nil, err
	}
	if _, err := corev1.NewService(ctx, name+"-svc", &corev1.ServiceArgs{Metadata: meta(name), Spec: corev1.ServiceSpecArgs{Selector: labels,
		Ports: corev1.ServicePortArray{corev1.ServicePortArgs{Name: pulumi.String("s3"), Port: pulumi.Int(NFSStorePort), TargetPort: pulumi.String("s3")}}}},
		parent); err != nil {
		return nil, err
	}
	// Only S3 is reachable, and only from the clients: the store's master, volume and filer
	// listeners bind the pod's address too.
	from := networkingv1.NetworkPolicyPeerArray{}
	for _, c := range a.Clients {
		from = append(from, networkingv1.NetworkPolicyPeerArgs{NamespaceSelector: &metav1.LabelSelectorArgs{
			MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String(c)}}})
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-netpol", &networkingv1.NetworkPolicyArgs{Metadata: meta(name), Spec: networkingv1.NetworkPolicySpecArgs{
		PodSelector: metav1.LabelSelectorArgs{MatchLabels: labels}, PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{From: from,
			Ports: networkingv1.NetworkPolicyPortArray{networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(NFSStorePort), Protocol: pulumi.String("TCP")}}}}}},
		parent); err != nil {
		return nil, err
	}
	r.URL = pulumi.Sprintf("%s://%s.%s.svc:%d", scheme, name, a.Namespace, NFSStorePort)
	r.Bucket = pulumi.String(a.Bucket).ToStringOutput()
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"url": r.URL, "bucket": r.Bucket})
}
