package backup

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/backup/drill"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// VeleroChart is Velero's official chart, pinned.
var VeleroChart = addon.Chart{Repo: "https://vmware-tanzu.github.io/helm-charts", Name: "velero", Version: "12.1.0"}

// VeleroArgs: where a cluster's backups go and when they run.
type VeleroArgs struct {
	// Namespace of Velero (default velero).
	Namespace string `json:"namespace,omitempty"`
	// Install Velero from its official chart; nil when Velero runs already (kplane then manages
	// its storage location and schedules only).
	Install *VeleroInstall `json:"install,omitempty"`
	// CSI turns on the installed Velero's CSI snapshots (its EnableCSI feature): volumes are
	// snapshotted through the cluster's VolumeSnapshotClasses. It needs the snapshot CRDs
	// (external-snapshotter): without them every backup ends PartiallyFailed. The composed
	// platform sets it with csiSnapshots.
	CSI bool `json:"csi,omitempty"`
	// Storage is the backup storage location.
	Storage Storage `json:"storage"`
	// SnapshotLocations for the provider's own volume snapshots (EBS on AWS); CSI snapshots need
	// none (see NewCSISnapshots), nor do file-system backups.
	SnapshotLocations []SnapshotLocation `json:"snapshotLocations,omitempty"`
	// Schedules of backups.
	Schedules []Schedule `json:"schedules,omitempty"`
}

// SnapshotLocation is a VolumeSnapshotLocation: where Velero's volume snapshotter plugin takes
// the snapshots of persistent volumes (for AWS, EBS snapshots in a region).
type SnapshotLocation struct {
	Name string `json:"name"`
	// Provider is the volume snapshotter plugin (default aws; its plugin is installed with Velero).
	Provider string `json:"provider,omitempty"`
	// Region of the volumes (required for aws: EBS snapshots are regional).
	Region string `json:"region,omitempty"`
	// Config is the provider's other settings (e.g. profile, enableSharedConfig).
	Config map[string]string `json:"config,omitempty"`
	// CredentialsSecret: a Secret with key "cloud" (default: storage.credentialsSecret).
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// VeleroInstall installs the chart.
type VeleroInstall struct {
	// Image of the Velero server and PluginImage of velero-plugin-for-aws, by digest.
	Image       string `json:"image"`
	PluginImage string `json:"pluginImage"`
	// ClientQPS and ClientBurst cap the server's requests to the API server (default
	// DefaultClientQPS and DefaultClientBurst; Velero's own are 20 and 30). A restore makes about
	// three requests per object, one after another, so the cap must sit above what that pace
	// needs. API Priority and Fairness queues Velero's requests in its service accounts' priority
	// level, behind the control plane's and users', so the higher cap does not starve them; lower
	// it where the API server runs without it.
	ClientQPS   float64 `json:"clientQPS,omitempty"`
	ClientBurst int     `json:"clientBurst,omitempty"`
	addon.Install
}

// The default client rate of kplane's Velero (Velero's own: 20 QPS, burst 30).
const (
	DefaultClientQPS   = 200
	DefaultClientBurst = 400
)

// clientRate is the server's client QPS and burst, defaults applied.
func (in VeleroInstall) clientRate() (float64, int) {
	qps, burst := in.ClientQPS, in.ClientBurst
	if qps == 0 {
		qps = DefaultClientQPS
	}
	if burst == 0 {
		burst = max(DefaultClientBurst, int(qps))
	}
	return qps, burst
}

// Storage is an S3 bucket or an S3-compatible store.
type Storage struct {
	// Name of the BackupStorageLocation (default "default").
	Name   string `json:"name,omitempty"`
	Bucket string `json:"bucket"`
	// Prefix in the bucket (default velero/<stack>): clusters sharing a bucket keep apart, and a
	// migration target points at the source's prefix.
	Prefix string `json:"prefix,omitempty"`
	Region string `json:"region,omitempty"`
	// URL of an S3-compatible store (on-premises object storage); empty for AWS S3.
	URL string `json:"url,omitempty"`
	// CACert (PEM) of the store's certificate when a private CA signed it.
	CACert string `json:"caCert,omitempty"`
	// CredentialsSecret names a Secret in the namespace whose key "cloud" is an AWS credentials
	// file ([default] aws_access_key_id=..., aws_secret_access_key=...).
	CredentialsSecret string `json:"credentialsSecret"`
	// ReadOnly locations are for restores and migrations into this cluster: its Velero never
	// writes there or deletes expired backups.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Secondary locations are not the cluster's default: only backups and restores that name
	// them use them (e.g. another cluster's location, read-only, to migrate from).
	Secondary bool `json:"secondary,omitempty"`
	// WaitSeconds: how long `pulumi up` waits for Velero to find the location usable (phase
	// Available: bucket reachable, credentials accepted) before it fails (default 300; -1: do not
	// wait, e.g. when Velero is started after the stack).
	WaitSeconds int `json:"waitSeconds,omitempty"`
}

// Schedule is one backup schedule.
type Schedule struct {
	Name string `json:"name"`
	// Cron in five fields, e.g. "0 1 * * *".
	Cron string `json:"cron"`
	// Namespaces backed up ("*" for all: a whole-cluster backup).
	Namespaces []string `json:"namespaces"`
	// Selector limits the backup to objects with these labels.
	Selector map[string]string `json:"selector,omitempty"`
	// TTL of each backup, e.g. 720h (30 days); required (retention is a decision).
	TTL string `json:"ttl"`
	// ClusterResources includes cluster-scoped objects (default: with "*", yes; otherwise those
	// the namespaced objects need).
	ClusterResources *bool `json:"clusterResources,omitempty"`
	// FileSystemBackup copies pod volumes with Velero's node agent (kopia) instead of CSI snapshots.
	FileSystemBackup bool `json:"fileSystemBackup,omitempty"`
	// SnapshotLocations (names of snapshotLocations) the backups snapshot volumes into.
	SnapshotLocations []string `json:"snapshotLocations,omitempty"`
	// RPO: the most data, as time, a restore from these backups may lose, e.g. 25h (default:
	// the longest gap between the cron's runs). RTO: how long a restore of them may take, e.g.
	// 30m (default: none). The restore drill measures both and the fleet alerts on a miss.
	RPO string `json:"rpo,omitempty"`
	RTO string `json:"rto,omitempty"`
}

var (
	dnsName  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	duration = regexp.MustCompile(`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`)
)

// CheckTiming checks a schedule's cron and ttl at p.cron and p.ttl.
func CheckTiming(p *field.Path, cron, ttl string) field.ErrorList {
	var errs field.ErrorList
	if len(strings.Fields(cron)) != 5 {
		errs.Add(field.Invalid(p.Child("cron"), cron, "five fields, e.g. \"0 1 * * *\""))
	}
	if ttl == "" || !duration.MatchString(ttl) {
		errs.Add(field.Invalid(p.Child("ttl"), ttl, "how long backups are kept, e.g. 720h (required)"))
	}
	return errs
}

// Validate names the argument and the fix.
func (a VeleroArgs) Validate() error {
	var errs field.ErrorList
	s := a.Storage
	if s.Bucket == "" {
		errs.Add(field.Required(field.At("storage.bucket"), "the S3 bucket of the backups"))
	}
	if s.CredentialsSecret == "" {
		errs.Add(field.Required(field.At("storage.credentialsSecret"), "a Secret with key \"cloud\": an AWS credentials file"))
	}
	if s.Name != "" && !dnsName.MatchString(s.Name) {
		errs.Add(field.Invalid(field.At("storage.name"), s.Name, "lower-case letters, digits and dashes"))
	}
	if s.WaitSeconds < -1 {
		errs.Add(field.Invalid(field.At("storage.waitSeconds"), s.WaitSeconds, "seconds to wait for the location (-1: do not wait)"))
	}
	if s.URL != "" {
		u, err := url.Parse(s.URL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			errs.Add(field.Invalid(field.At("storage.url"), s.URL, "the S3-compatible store's URL (https://...)"))
		}
	}
	locations := map[string]bool{}
	for i, l := range a.SnapshotLocations {
		if !dnsName.MatchString(l.Name) || locations[l.Name] {
			errs.Add(field.Invalid(field.At("snapshotLocations[%d].name", i), l.Name, "unique, lower-case letters, digits and dashes"))
		}
		if (l.Provider == "" || l.Provider == "aws") && l.Region == "" {
			errs.Add(field.Invalid(field.At("snapshotLocations[%d].region", i), nil, "required for aws (EBS snapshots are regional)"))
		}
		locations[l.Name] = true
	}
	seen := map[string]bool{}
	for i, sc := range a.Schedules {
		if !dnsName.MatchString(sc.Name) || seen[sc.Name] {
			errs.Add(field.Invalid(field.At("schedules[%d].name", i), sc.Name, "unique, lower-case letters, digits and dashes"))
		}
		errs = append(errs, CheckTiming(field.At("schedules[%d]", i), sc.Cron, sc.TTL)...)
		errs = append(errs, CheckObjectives(field.At("schedules[%d]", i), sc.Cron, sc.RPO, sc.RTO)...)
		if len(sc.Namespaces) == 0 {
			errs.Add(field.Required(field.At("schedules[%d].namespaces", i), "at least one (\"*\" for the whole cluster)"))
		}
		for j, l := range sc.SnapshotLocations {
			if !locations[l] {
				errs.Add(field.Invalid(field.At("schedules[%d].snapshotLocations[%d]", i, j), l, "not one of snapshotLocations (declare it there)"))
			}
		}
		seen[sc.Name] = true
	}
	if in := a.Install; in != nil {
		qps, burst := in.clientRate()
		if in.ClientQPS < 0 {
			errs.Add(field.Invalid(field.At("install.clientQPS"), in.ClientQPS, fmt.Sprintf("requests per second to the API server, more than 0 (default %d)", DefaultClientQPS)))
		} else if in.ClientBurst < 0 || float64(burst) < qps {
			errs.Add(field.Invalid(field.At("install.clientBurst"), in.ClientBurst, fmt.Sprintf("at least clientQPS (%g): the requests Velero may make at once (default %d)", qps, DefaultClientBurst)))
		}
		errs.Merge(field.At("install"), in.Validate(VeleroChart, addon.Image{Key: "image", Ref: in.Image}, addon.Image{Key: "pluginImage", Ref: in.PluginImage}))
	}
	return errs.OrNil()
}

func (a VeleroArgs) withDefaults(stack string) VeleroArgs {
	if a.Namespace == "" {
		a.Namespace = "velero"
	}
	if a.Storage.Name == "" {
		a.Storage.Name = "default"
	}
	if a.Storage.Prefix == "" {
		a.Storage.Prefix = "velero/" + stack
	}
	if a.Storage.Region == "" {
		a.Storage.Region = "us-east-1"
	}
	if a.Storage.WaitSeconds == 0 {
		a.Storage.WaitSeconds = 300
	}
	return a
}

// Velero is a cluster's Velero configuration.
type Velero struct {
	pulumi.ResourceState
	// StorageLocation is the BackupStorageLocation's name.
	StorageLocation pulumi.StringOutput `pulumi:"storageLocation"`
}

// NewVelero validates args, then registers Velero's chart (when Install is set), the storage
// location and the schedules.
func NewVelero(ctx *pulumi.Context, name string, args *VeleroArgs, opts ...pulumi.ResourceOption) (*Velero, error) {
	r := &Velero{}
	args, err := component.Register(ctx, "Velero", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	a := args.withDefaults(ctx.Stack())
	deps := []pulumi.Resource{}
	if in := a.Install; in != nil {
		ns, err := corev1.NewNamespace(ctx, name+"-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(a.Namespace),
			Labels: pulumi.StringMap{"pod-security.kubernetes.io/enforce": pulumi.String("restricted"), "pod-security.kubernetes.io/enforce-version": pulumi.String(k8sobj.PodSecurityVersion),
				wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}},
			pulumi.Parent(r))
		if err != nil {
			return nil, err
		}
		release, err := helmv4.NewChart(ctx, name+"-velero", in.Release(VeleroChart, "velero", a.Namespace, a.chartValues()),
			pulumi.Parent(r), pulumi.DependsOn([]pulumi.Resource{ns}))
		if err != nil {
			return nil, err
		}
		deps = append(deps, release)
	}
	after := []pulumi.ResourceOption{pulumi.Parent(r), pulumi.DependsOn(deps)}
	bsl, err := k8sobj.Object(ctx, name+"-location", a.storageLocation(), after...)
	if err != nil {
		return nil, err
	}
	locations := []pulumi.Resource{bsl}
	for _, l := range a.SnapshotLocations {
		vsl, err := k8sobj.Object(ctx, name+"-snapshot-location-"+l.Name, a.snapshotLocation(l), after...)
		if err != nil {
			return nil, err
		}
		locations = append(locations, vsl)
	}
	for _, s := range a.Schedules {
		if _, err := k8sobj.Object(ctx, name+"-schedule-"+s.Name, a.schedule(s), pulumi.Parent(r), pulumi.DependsOn(locations)); err != nil {
			return nil, err
		}
	}
	r.StorageLocation = pulumi.String(a.Storage.Name).ToStringOutput()
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"storageLocation": r.StorageLocation})
}

func (a VeleroArgs) storageLocation() map[string]any {
	s := a.Storage
	config := map[string]any{"region": s.Region}
	if s.URL != "" {
		config["s3Url"], config["s3ForcePathStyle"] = s.URL, "true"
	}
	objectStorage := map[string]any{"bucket": s.Bucket, "prefix": s.Prefix}
	if s.CACert != "" {
		objectStorage["caCert"] = encodeCA(s.CACert)
	}
	mode := "ReadWrite"
	if s.ReadOnly {
		mode = "ReadOnly"
	}
	metadata := map[string]any{"name": s.Name, "namespace": a.Namespace, "labels": map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy}}
	if s.WaitSeconds > 0 {
		// An unusable location fails the update instead of every backup failing later; Velero's
		// reason is the location's status.message.
		metadata["annotations"] = map[string]any{"pulumi.com/waitFor": "jsonpath={.status.phase}=Available",
			"pulumi.com/timeoutSeconds": fmt.Sprint(s.WaitSeconds)}
	}
	return map[string]any{"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
		"metadata": metadata,
		"spec": map[string]any{"provider": "aws", "objectStorage": objectStorage, "config": config, "accessMode": mode, "default": !s.Secondary,
			"credential": map[string]any{"name": s.CredentialsSecret, "key": "cloud"}}}
}

func (a VeleroArgs) snapshotLocation(l SnapshotLocation) map[string]any {
	config := map[string]any{}
	for k, v := range l.Config {
		config[k] = v
	}
	if l.Region != "" {
		config["region"] = l.Region
	}
	provider, secret := l.Provider, l.CredentialsSecret
	if provider == "" {
		provider = "aws"
	}
	if secret == "" {
		secret = a.Storage.CredentialsSecret
	}
	return map[string]any{"apiVersion": "velero.io/v1", "kind": "VolumeSnapshotLocation",
		"metadata": map[string]any{"name": l.Name, "namespace": a.Namespace, "labels": map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy}},
		"spec":     map[string]any{"provider": provider, "config": config, "credential": map[string]any{"name": secret, "key": "cloud"}}}
}

// CheckObjectives checks a schedule's RPO and RTO at p.rpo and p.rto: durations, and an RPO
// its cron can meet.
func CheckObjectives(p *field.Path, cron, rpo, rto string) field.ErrorList {
	var errs field.ErrorList
	for _, o := range [][2]string{{"rpo", rpo}, {"rto", rto}} {
		if d, err := time.ParseDuration(o[1]); o[1] != "" && (err != nil || d <= 0) {
			errs.Add(field.Invalid(p.Child(o[0]), o[1], "a positive duration, e.g. 25h or 30m"))
		}
	}
	if d, err := time.ParseDuration(rpo); err == nil && d > 0 {
		if gap := drill.CronGap(cron, time.Now()); d < gap {
			errs.Add(field.Invalid(p.Child("rpo"), rpo, fmt.Sprintf("the cron %q runs as far as %s apart, so it can never meet this RPO: run it more often or raise the RPO", cron, gap)))
		}
	}
	return errs
}

// objectives are a schedule's RPO and RTO as the annotations the drill and the fleet read.
func (s Schedule) objectives() map[string]any {
	out := map[string]any{}
	if s.RPO != "" {
		out[wellknown.RPOAnnotation] = s.RPO
	}
	if s.RTO != "" {
		out[wellknown.RTOAnnotation] = s.RTO
	}
	return out
}

func (a VeleroArgs) schedule(s Schedule) map[string]any {
	template := map[string]any{"includedNamespaces": s.Namespaces, "ttl": s.TTL, "storageLocation": a.Storage.Name,
		"defaultVolumesToFsBackup": s.FileSystemBackup, "snapshotMoveData": false}
	if s.ClusterResources != nil {
		template["includeClusterResources"] = *s.ClusterResources
	}
	if len(s.SnapshotLocations) > 0 {
		template["volumeSnapshotLocations"], template["snapshotVolumes"] = s.SnapshotLocations, true
	}
	if len(s.Selector) > 0 {
		labels := map[string]any{}
		for k, v := range s.Selector {
			labels[k] = v
		}
		template["labelSelector"] = map[string]any{"matchLabels": labels}
	}
	return map[string]any{"apiVersion": "velero.io/v1", "kind": "Schedule",
		"metadata": map[string]any{"name": s.Name, "namespace": a.Namespace, "labels": map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy},
			"annotations": s.objectives()},
		"spec": map[string]any{"schedule": s.Cron, "template": template, "useOwnerReferencesInBackup": false}}
}

// chartValues: the server and the AWS plugin by digest, the credentials Secret kplane names,
// no location or schedule of the chart's own (kplane declares them), no CRD-upgrade Job (its
// kubectl image is not pinned), a restricted pod.
func (a VeleroArgs) chartValues() map[string]any {
	in := a.Install
	repo, digest, _ := strings.Cut(in.Image, "@")
	prepo, pdigest, _ := strings.Cut(in.PluginImage, "@")
	nodeAgent := false // the file-system backup of pod volumes needs Velero's node agent
	for _, s := range a.Schedules {
		nodeAgent = nodeAgent || s.FileSystemBackup
	}
	qps, burst := in.clientRate()
	configuration := map[string]any{"uploaderType": "kopia", "clientQPS": strconv.FormatFloat(qps, 'f', -1, 64), "clientBurst": burst}
	if a.CSI {
		configuration["features"] = "EnableCSI"
	}
	return map[string]any{
		"deployNodeAgent": nodeAgent,
		"image":           map[string]any{"repository": repo, "digest": digest},
		"initContainers": []any{map[string]any{"name": "velero-plugin-for-aws", "image": prepo + "@" + pdigest, "securityContext": restrictedContainer(),
			"volumeMounts": []any{map[string]any{"mountPath": "/target", "name": "plugins"}}}},
		"credentials":              map[string]any{"useSecret": true, "existingSecret": a.Storage.CredentialsSecret},
		"backupsEnabled":           false,
		"snapshotsEnabled":         false,
		"upgradeCRDs":              false,
		"configuration":            configuration,
		"podSecurityContext":       map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
		"containerSecurityContext": restrictedContainer(),
	}
}

// restrictedContainer is the server's and the plugin's container security context (the chart
// passes init containers through as given: without it the restricted namespace refuses the pod).
func restrictedContainer() map[string]any {
	return map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
		"capabilities": map[string]any{"drop": []any{"ALL"}}}
}

// encodeCA: the location's caCert is bytes, base64 in the object.
func encodeCA(pem string) string { return base64.StdEncoding.EncodeToString([]byte(pem)) }
