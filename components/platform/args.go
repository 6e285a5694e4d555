package platform

import (
	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/mesh"
)

// Args: the platform of one cluster, one field per capability. Each but Security is optional
// (nil: not installed); the zero value is the hardened cluster alone.
type Args struct {
	// Charts is a directory of unpacked charts named after the official ones (base, istiod,
	// gateway, cni, velero, prometheus, grafana, kiali-server, jaeger, kong, gatekeeper,
	// external-secrets): an air-gapped mirror. A component's chart with no source of its own is
	// taken from there.
	Charts string `json:"charts,omitempty"`
	// Images is the registry holding kplane's own images, e.g. registry.example.com/kplane
	// (`make images`, docs/images.md): an image argument of kplane's left empty becomes
	// <Images>/<name>@<the digest this source builds>.
	Images string `json:"images,omitempty"`
	// Security is the hardened cluster: always installed.
	Security hardenedcluster.Args `json:"security"`
	// Identity is the identity realm.
	Identity *identity.Args `json:"identity,omitempty"`
	// Backup is Velero, its schedules and the snapshots.
	Backup *Backup `json:"backup,omitempty"`
	// Mesh is Istio and its add-ons.
	Mesh *Mesh `json:"mesh,omitempty"`
	// Gateway is the API gateway and its catalog.
	Gateway *Gateway `json:"gateway,omitempty"`

	stack string // for Velero's default prefix (velero/<stack>)
}

// OptOut leaves one team namespace out of a capability that covers every team namespace by
// default; the reason is kept in the outputs.
type OptOut struct {
	Namespace string `json:"namespace"`
	Reason    string `json:"reason"`
}

// Backup is kplane:backup: Velero with the environment's own schedules, plus a schedule that
// covers every team namespace and one for the platform's own namespaces.
type Backup struct {
	backup.VeleroArgs
	// Teams: the schedule of every team namespace (default daily at 01:00, kept 30 days).
	Teams Coverage `json:"teams,omitempty"`
	// Platform: the schedule of the platform's namespaces (identity, mesh, gateway, secrets) and
	// of Namespaces (e.g. the one holding Keycloak's database).
	Platform Coverage `json:"platform,omitempty"`
	// OptOut: team namespaces left out of the team schedule and the restore drill.
	OptOut []OptOut `json:"optOut,omitempty"`
	// EtcdSnapshots, CSISnapshots and RestoreDrill: see the backup component.
	EtcdSnapshots *backup.EtcdSnapshotsArgs `json:"etcdSnapshots,omitempty"`
	CSISnapshots  *backup.CSISnapshotsArgs  `json:"csiSnapshots,omitempty"`
	RestoreDrill  *backup.RestoreDrillArgs  `json:"restoreDrill,omitempty"`
}

// Coverage is a schedule kplane writes for a set of namespaces.
type Coverage struct {
	Cron string `json:"cron,omitempty"`
	TTL  string `json:"ttl,omitempty"`
	// Namespaces added to it (platform only).
	Namespaces []string `json:"namespaces,omitempty"`
	// RPO and RTO: the schedule's objectives (backup.Schedule), measured by the restore drill.
	RPO string `json:"rpo,omitempty"`
	RTO string `json:"rto,omitempty"`
}

// Mesh is kplane:mesh: the mesh component's arguments; every team namespace joins the mesh
// (STRICT mTLS, deny by default, its services from kplane:security.services) unless opted out.
type Mesh struct {
	mesh.Args
	OptOut []OptOut `json:"optOut,omitempty"`
}

// Gateway is kplane:gateway: the gateway component's arguments. Left empty, tokens come from
// the identity realm (issuer and JWKS), the engine is istio when there is a mesh (its first
// gateway), and the consumers become the realm's API clients.
type Gateway struct {
	gateway.Args
}
