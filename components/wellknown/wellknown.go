// Package wellknown is kplane's vocabulary on Kubernetes objects: every label, annotation and
// value kplane defines, one constant each, saying who sets it and who reads it. It is not a
// component; components, run-time commands, policies and tests all speak it, and it imports
// nothing, so any layer may import it.
//
// kplane's own keys live under kplane.io/. A key another project defines (app.kubernetes.io/*,
// Argo CD's) is here only when kplane sets or reads it in more than one place.
package wellknown

// Keys kplane shares with the Kubernetes recommended labels.
const (
	// ManagedByLabel is set to ManagedBy on every object a kplane component creates; the
	// drills, reports and tests select kplane's objects with it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedBy is ManagedByLabel's value.
	ManagedBy = "kplane"
	// NameLabel names the program a workload runs (kplane-nodecheck, kplane-catalog ...).
	NameLabel = "app.kubernetes.io/name"
)

// Hardened cluster.
const (
	// TeamLabel is set by the hardened cluster on each team namespace (value: the team's name).
	// The admission rules, the identity realm's RoleBindings and the mesh's team policies read
	// which team owns a namespace from it.
	TeamLabel = "kplane.io/team"
	// ServiceLabel is set by the hardened cluster on each service's ServiceAccount, Role and
	// RoleBinding (value: the service's name); the RBAC policies report by it.
	ServiceLabel = "kplane.io/service"
	// WildcardReasonAnnotation is set by the hardened cluster on a Role or ClusterRole whose rules
	// use a wildcard the arguments allowed, with the reason given; the RBAC policies accept a
	// wildcard only where it is present.
	WildcardReasonAnnotation = "kplane.io/wildcard-reason"
	// SecretsReadReasonAnnotation is set by a kplane component on a Role or ClusterRole that
	// must list Secrets (the restore drill verifies restored Secrets in its scratch namespaces,
	// where alone it is bound); the policy pack's kplane-rbac-secrets accepts it with the reason
	// shown in the finding's place. Read by: policies/kubernetes.
	SecretsReadReasonAnnotation = "kplane.io/secrets-read-reason"
	// EscalationReasonAnnotation is set by the fleet member on the roles of a member's Argo CD
	// credentials that must bind, escalate or impersonate (the platform's deployer installs the
	// platform's RBAC; the entry impersonates the two named deployers); kplane-rbac-escalation
	// accepts it on the FleetMember component's roles only. Read by: policies/kubernetes.
	EscalationReasonAnnotation = "kplane.io/escalation-reason"
	// ControlsAnnotation is set on admission policies, Gatekeeper constraints and network
	// policies: the CIS, KISA and ISMS-P controls the object implements. Reports read it.
	ControlsAnnotation = "kplane.io/controls"
	// DescriptionAnnotation is set on each admission policy: the rule in one English sentence.
	DescriptionAnnotation = "kplane.io/description"
	// ExceptionsAnnotation is set on each admission policy: its exceptions (JSON), for auditors.
	ExceptionsAnnotation = "kplane.io/exceptions"
	// ExpiredExceptionsAnnotation is set by the exception-expiry CronJob (kplane-admission
	// expire) on a policy whose exceptions it removed (JSON list); the policy pack's
	// kplane-exception-expired fails the preview while the arguments still hold them.
	ExpiredExceptionsAnnotation = "kplane.io/expired-exceptions"
	// NodePoolLabel is set by the hardened cluster on the node-check pods (value: the pool).
	NodePoolLabel = "kplane.io/node-pool"
	// NodeCheckLabel is set to NodeCheckReport by kplane-nodecheck on the ConfigMap holding its
	// report; the compliance report lists the reports by it.
	NodeCheckLabel = "kplane.io/node-check"
	// NodeCheckReport is NodeCheckLabel's value.
	NodeCheckReport = "report"
	// CheckedAtAnnotation is set by kplane-nodecheck on its report: when the node was checked.
	CheckedAtAnnotation = "kplane.io/checked-at"
	// TotalsAnnotation is set by kplane-nodecheck on its report: PASS/FAIL/WARN/SKIP counts.
	TotalsAnnotation = "kplane.io/totals"
	// PurposeAnnotation says why a generated secret or bucket exists, for whoever finds it.
	PurposeAnnotation = "kplane.io/purpose"
)

// Identity realm.
const (
	// RealmLabel is set by the identity realm on the ConfigMap whose realm.json is a Keycloak
	// realm representation (value: the realm's name); kplane-realm-sync and the identity
	// policies find realms by it.
	RealmLabel = "kplane.io/keycloak-realm"
)

// Gateway and mesh.
const (
	// ExposureAnnotation on a route or Ingress: "internal" marks a route that is not public (the
	// route policies skip it); "login" marks a public application that authenticates its users
	// itself (the developer portal). Set by the gateway component, read by the route policies.
	ExposureAnnotation = "kplane.io/exposure"
	// ExposureInternal and ExposureLogin are ExposureAnnotation's values.
	ExposureInternal = "internal"
	ExposureLogin    = "login"
)

// Backup stack.
const (
	// SnapshotPolicyLabel is set by kplane-backup on each VolumeSnapshot it takes (value: the
	// snapshot policy's name); its retention prunes by it.
	SnapshotPolicyLabel = "kplane.io/snapshot-policy"
	// ClaimLabel is set by kplane-backup on each VolumeSnapshot: the PersistentVolumeClaim's name.
	ClaimLabel = "kplane.io/pvc"
	// SealAnnotation is set by the restore drill on a Velero Backup: the SHA-256 of its tarball
	// when first verified. A later drill refuses a backup whose tarball no longer matches.
	SealAnnotation = "kplane.io/tarball-sha256"
	// DrillLabel is set to "true" by the restore drill on the Velero Restores it makes.
	DrillLabel = "kplane.io/drill"
	// DrillOfLabel is set by the backup stack on a drill's scratch namespace and on the
	// ConfigMap holding its latest evidence (value: the namespace it restores).
	DrillOfLabel = "kplane.io/drill-of"
	// DrillScheduleAnnotation on a drill's evidence ConfigMap: the drill's cron (how often new
	// evidence is due).
	DrillScheduleAnnotation = "kplane.io/drill-schedule"
	// RPOAnnotation and RTOAnnotation on a Velero Schedule: its recovery point objective (the
	// most data, as time, a restore from it may lose; default: the longest gap between its runs)
	// and recovery time objective (how long a restore of it may take; default: none). Go
	// durations, e.g. 25h, 30m.
	RPOAnnotation = "kplane.io/rpo"
	RTOAnnotation = "kplane.io/rto"
)

// Fleet member.
const (
	// MemberLabel is set by the fleet member on its Argo CD cluster entry and on what it puts on
	// the member (value: the member's name); the platform's ApplicationSets template by it.
	MemberLabel = "kplane.io/fleet-member"
	// EnvironmentLabel is set by the fleet member on its Argo CD cluster entry (value: the
	// environment); each environment's ApplicationSets select their members by it.
	EnvironmentLabel = "kplane.io/environment"
	// RolloutLabel gates the platform's ApplicationSets: the wave runner sets it to
	// RolloutEnabled on a member once it is healthy. The stack does not declare it, so
	// `pulumi up` leaves it alone.
	RolloutLabel = "kplane.io/rollout"
	// RolloutEnabled is RolloutLabel's value.
	RolloutEnabled = "enabled"
)

// Prefix is the prefix of every key kplane defines; users may not set keys under it.
const Prefix = "kplane.io/"
