package kubernetes

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies/pack"
)

// systemNamespaces run the control plane: Pod Security Admission levels there are the
// platform's business.
var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// PlatformPolicies check that the cluster's guard rails are on: admission policies deny (not
// just warn) and namespaces enforce a Pod Security Standards level.
func PlatformPolicies() []pack.Policy {
	return []pack.Policy{
		{Name: "kplane-admission-enforced", Enforcement: pack.Mandatory,
			Description: "admission policies deny violations (ValidatingAdmissionPolicyBinding Deny, Gatekeeper constraint deny)", DescriptionKo: "어드미션 정책은 위반을 거부해야 합니다(경고·감사만으로는 부족)",
			Remediation: "set Admission.Mode to enforce (the environment's kplane:security admission.mode)", RemediationKo: "환경 설정 admission.mode를 enforce로 설정하십시오",
			Controls: []pack.Control{{Framework: "CIS", ID: "5.2.1"}, {Framework: "KISA", ID: "Master-05"}, {Framework: "KISA", ID: "Master-12"}},
			Subjects: "admission policy bindings or Gatekeeper constraints (kplane:security)", SubjectsKo: "어드미션 정책 바인딩 또는 Gatekeeper 제약(kplane:security)",
			Applies: func(r pack.Resource) bool {
				return strings.HasSuffix(r.Type, ":ValidatingAdmissionPolicyBinding") || strings.HasPrefix(r.Type, "kubernetes:constraints.gatekeeper.sh/")
			},
			Check: func(r pack.Resource) []string {
				name, _ := r.Meta()
				switch {
				case strings.HasSuffix(r.Type, ":ValidatingAdmissionPolicyBinding"):
					spec, _ := r.Props["spec"].(map[string]any)
					if !has(pack.Strings(spec["validationActions"]), "Deny") {
						return []string{fmt.Sprintf("ValidatingAdmissionPolicyBinding %s: validationActions %v do not include Deny", name, pack.Strings(spec["validationActions"]))}
					}
				case strings.HasPrefix(r.Type, "kubernetes:constraints.gatekeeper.sh/"):
					spec, _ := r.Props["spec"].(map[string]any)
					if action, _ := spec["enforcementAction"].(string); action != "" && action != "deny" {
						return []string{fmt.Sprintf("Gatekeeper constraint %s: enforcementAction %s, not deny", name, action)}
					}
				}
				return nil
			}},
		{Name: "kplane-exception-expired", Enforcement: pack.Mandatory,
			Description: "no admission exception past its expiry date stays in the environment", DescriptionKo: "만료일이 지난 어드미션 예외가 환경 설정에 남아 있으면 안 됩니다",
			Remediation: "remove the expired exception from the environment's kplane:security admission.exceptions, or renew it with a new date, owner and ticket", RemediationKo: "환경 설정 admission.exceptions에서 만료된 예외를 제거하거나 새 날짜·담당자·티켓으로 갱신하십시오",
			Controls: []pack.Control{{Framework: "ISMS-P", ID: "2.10.1"}, {Framework: "KISA", ID: "Master-05"}},
			Subjects: "admission policies (kplane:security)", SubjectsKo: "어드미션 정책(kplane:security)",
			Applies: func(r pack.Resource) bool {
				return strings.HasSuffix(r.Type, ":ValidatingAdmissionPolicy") || strings.HasPrefix(r.Type, "kubernetes:constraints.gatekeeper.sh/")
			},
			Check: func(r pack.Resource) []string {
				name, _ := r.Meta()
				meta, _ := r.Props["metadata"].(map[string]any)
				annotations, _ := meta["annotations"].(map[string]any)
				raw, _ := annotations[wellknown.ExpiredExceptionsAnnotation].(string)
				if raw == "" {
					return nil
				}
				var expired []hardenedcluster.Exception
				if err := json.Unmarshal([]byte(raw), &expired); err != nil {
					return []string{fmt.Sprintf("%s: unreadable %s: %v", name, wellknown.ExpiredExceptionsAnnotation, err)}
				}
				var out []string
				for _, e := range expired {
					out = append(out, fmt.Sprintf("exception to %s for %s/%s (owner %s, ticket %s) expired on %s", name, e.Namespace, cmp.Or(e.Workload, "*"), e.Owner, e.Ticket, e.Expires))
				}
				return out
			}},
		{Name: "kplane-pod-security-enforced", Enforcement: pack.Mandatory,
			Description: "every namespace enforces Pod Security Standards baseline or restricted, version pinned", DescriptionKo: "모든 네임스페이스는 Pod Security Standards baseline 이상을 강제하고 버전을 고정해야 합니다",
			Remediation: "label the namespace pod-security.kubernetes.io/enforce=restricted (or baseline) with enforce-version; kplane's team namespaces do", RemediationKo: "네임스페이스에 pod-security.kubernetes.io/enforce=restricted(또는 baseline)와 enforce-version 레이블을 지정하십시오",
			Controls: []pack.Control{{Framework: "CIS", ID: "5.2.1"}, {Framework: "KISA", ID: "Master-12"}, {Framework: "PSS", ID: "baseline"}},
			Check: func(r pack.Resource) []string {
				if r.Type != "kubernetes:core/v1:Namespace" {
					return nil
				}
				name, labels := r.Meta()
				if systemNamespaces[name] {
					return nil
				}
				level, _ := labels["pod-security.kubernetes.io/enforce"].(string)
				version, _ := labels["pod-security.kubernetes.io/enforce-version"].(string)
				switch {
				case level != "baseline" && level != "restricted" && level != "privileged":
					return []string{fmt.Sprintf("Namespace %s: no pod-security.kubernetes.io/enforce level", name)}
				case level == "privileged" && labels[wellknown.ManagedByLabel] != "kplane":
					return []string{fmt.Sprintf("Namespace %s: enforces the privileged level", name)}
				case version == "" || version == "latest":
					return []string{fmt.Sprintf("Namespace %s: enforce-version is not pinned", name)}
				}
				return nil
			}},
	}
}

// vaultPolicyPath matches one path stanza of a Vault policy (HCL).
var vaultPolicyPath = regexp.MustCompile(`path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]`)

// VaultPolicies checks the Vault policies a stack hands to the bootstrap (the kplane-vault-plan
// ConfigMap): no wildcard may reach beyond one service's own path, and nobody gets sudo or
// everything on a secret path.
func VaultPolicies() pack.Policy {
	return pack.Policy{Name: "kplane-vault-least-privilege", Enforcement: pack.Mandatory,
		Description: "Vault policies grant one service its own secret path; no wildcard over other services' paths, no sudo", DescriptionKo: "Vault 정책은 서비스 자신의 경로만 허용하며 다른 서비스 경로를 포함하는 와일드카드와 sudo를 허용하지 않습니다",
		Remediation: "scope each path to <mount>/data/<namespace>/<service>/..., as the hardened cluster's VaultPolicies do", RemediationKo: "각 경로를 <mount>/data/<namespace>/<service>/... 로 한정하십시오",
		Controls: []pack.Control{{Framework: "CIS", ID: "5.4.2"}, {Framework: "ISMS-P", ID: "2.7.2"}, {Framework: "ISMS-P", ID: "2.5.5"}},
		Subjects: "the Vault plan of services with secrets (kplane:security.secrets)", SubjectsKo: "시크릿을 쓰는 서비스의 Vault 계획(kplane:security.secrets)",
		Applies: func(r pack.Resource) bool {
			name, _ := r.Meta()
			return r.Kind("", "ConfigMap") && name == "kplane-vault-plan"
		},
		Check: func(r pack.Resource) []string {
			name, _ := r.Meta()
			if r.Type != "kubernetes:core/v1:ConfigMap" || name != "kplane-vault-plan" {
				return nil
			}
			data, _ := r.Props["data"].(map[string]any)
			raw, _ := data["plan.json"].(string)
			var plan struct {
				KVMount  string            `json:"kvMount"`
				Policies map[string]string `json:"policies"`
			}
			if err := json.Unmarshal([]byte(raw), &plan); err != nil {
				return []string{"kplane-vault-plan: plan.json is not a plan: " + err.Error()}
			}
			var msgs []string
			for _, role := range slices.Sorted(maps.Keys(plan.Policies)) {
				for _, m := range vaultPolicyPath.FindAllStringSubmatch(plan.Policies[role], -1) {
					path, caps := m[1], m[2]
					// <mount>/(data|metadata)/<namespace>/<service>/...: a wildcard must come after the service.
					rest := strings.TrimPrefix(strings.TrimPrefix(path, plan.KVMount+"/"), "data/")
					rest = strings.TrimPrefix(rest, "metadata/")
					if i := strings.IndexAny(rest, "*+"); i >= 0 && strings.Count(rest[:i], "/") < 2 {
						msgs = append(msgs, fmt.Sprintf("policy %s: path %q: the wildcard reaches beyond one service's path", role, path))
					}
					if strings.Contains(caps, `"sudo"`) {
						msgs = append(msgs, fmt.Sprintf("policy %s: path %q grants sudo", role, path))
					}
				}
			}
			return msgs
		}}
}
