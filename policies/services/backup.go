// Package services holds kplane's policies for the platform services a stack declares: backups
// (Velero), identity (Keycloak realms), the mesh (Istio mTLS) and routes to public services
// (Kong, Istio). They read the services' Kubernetes-native resources, so they judge kplane's
// components and any other stack that declares the same objects.
package services

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/kplane/kplane/policies/pack"
)

// cronSpec: five cron fields, or a descriptor such as @daily / @every 6h.
var cronSpec = regexp.MustCompile(`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every \S+|(\S+\s+){4}\S+)$`)

// veleroInstalled tells whether r installs or configures Velero.
func veleroInstalled(r pack.Resource) bool {
	if strings.HasPrefix(r.Type, "kubernetes:velero.io/") {
		return true
	}
	if r.Type == "kubernetes:helm.sh/v4:Chart" || r.Type == "kubernetes:helm.sh/v3:Release" {
		chart, _ := r.Props["chart"].(string)
		return chart == "velero" || strings.HasSuffix(chart, "/velero")
	}
	name, _ := r.Meta()
	return r.Kind("apps", "Deployment") && name == "velero"
}

// BackupPolicies: a stack that installs Velero backs up on a schedule to a storage location it
// declares, keeps backups for a stated time, and verifies the storage's TLS.
func BackupPolicies() []pack.Policy {
	return []pack.Policy{{Name: "kplane-backup-scheduled", Enforcement: pack.Mandatory,
		Description: "where Velero is installed, a BackupStorageLocation and Schedules exist; each Schedule runs, states its retention (ttl) and targets a declared location verified over TLS", DescriptionKo: "Velero를 설치한 스택은 BackupStorageLocation과 Schedule을 선언하고, 각 Schedule은 활성 상태로 보존 기간(ttl)을 명시하며 선언된 TLS 검증 저장소를 대상으로 해야 합니다",
		Remediation: "declare the backup stack's storage and schedules (components/backup), give every Schedule a template.ttl and an existing storageLocation, and keep insecureSkipTLSVerify off", RemediationKo: "백업 스택의 저장소와 스케줄을 선언하고, 모든 Schedule에 template.ttl과 존재하는 storageLocation을 지정하며 insecureSkipTLSVerify를 사용하지 마십시오",
		Controls: []pack.Control{{Framework: "KISA", ID: "CA-18"}, {Framework: "ISMS-P", ID: "2.9.3"}, {Framework: "ISMS-P", ID: "2.12.1"}},
		Applies:  veleroInstalled, Subjects: "a Velero installation (kplane:backup)", SubjectsKo: "Velero 설치(kplane:backup)",
		StackCheck: func(rs []pack.Resource) []pack.Finding {
			var installer *pack.Resource
			locations := map[string]pack.Resource{}
			var schedules []pack.Resource
			var out []pack.Finding
			for i, r := range rs {
				if veleroInstalled(r) && installer == nil {
					installer = &rs[i]
				}
				name, _ := r.Meta()
				switch {
				case r.Kind("velero.io", "BackupStorageLocation"):
					locations[name] = r
					if skip := fmt.Sprint(pack.Get(r.Props, "spec", "config", "insecureSkipTLSVerify")); skip == "true" {
						out = append(out, pack.Finding{URN: r.URN, Message: fmt.Sprintf("BackupStorageLocation %s: config.insecureSkipTLSVerify is true", name)})
					}
					if bucket, _ := pack.Get(r.Props, "spec", "objectStorage", "bucket").(string); bucket == "" {
						out = append(out, pack.Finding{URN: r.URN, Message: fmt.Sprintf("BackupStorageLocation %s: no objectStorage.bucket", name)})
					}
				case r.Kind("velero.io", "Schedule"):
					schedules = append(schedules, r)
				}
			}
			if installer == nil {
				return nil
			}
			if len(locations) == 0 {
				out = append(out, pack.Finding{URN: installer.URN, Message: "Velero is installed but the stack declares no BackupStorageLocation"})
			}
			if len(schedules) == 0 {
				out = append(out, pack.Finding{URN: installer.URN, Message: "Velero is installed but the stack declares no backup Schedule"})
			}
			for _, s := range schedules {
				name, _ := s.Meta()
				spec, _ := s.Props["spec"].(map[string]any)
				if cron, _ := spec["schedule"].(string); !cronSpec.MatchString(strings.TrimSpace(cron)) {
					out = append(out, pack.Finding{URN: s.URN, Message: fmt.Sprintf("Schedule %s: schedule %q is not a cron expression", name, cron)})
				}
				if paused, _ := spec["paused"].(bool); paused {
					out = append(out, pack.Finding{URN: s.URN, Message: fmt.Sprintf("Schedule %s is paused", name)})
				}
				if ttl, _ := pack.Get(spec, "template", "ttl").(string); ttl == "" {
					out = append(out, pack.Finding{URN: s.URN, Message: fmt.Sprintf("Schedule %s: template.ttl is not set (Velero would keep backups 30 days, whatever the policy says)", name)})
				}
				loc, _ := pack.Get(spec, "template", "storageLocation").(string)
				if _, ok := locations[loc]; loc != "" && loc != pack.Unknown && !ok {
					out = append(out, pack.Finding{URN: s.URN, Message: fmt.Sprintf("Schedule %s: storageLocation %q is not a BackupStorageLocation of the stack", name, loc)})
				}
			}
			return out
		}}}
}
