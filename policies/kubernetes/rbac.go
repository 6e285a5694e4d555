package kubernetes

import (
	"fmt"
	"strings"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies/pack"
)

// rbacRules are the rules of a Role or ClusterRole resource.
func rbacRules(r pack.Resource) []map[string]any {
	if r.Type != "kubernetes:rbac.authorization.k8s.io/v1:Role" && r.Type != "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole" {
		return nil
	}
	var out []map[string]any
	rules, _ := r.Props["rules"].([]any)
	for _, x := range rules {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func has(list []string, items ...string) bool {
	for _, x := range list {
		for _, y := range items {
			if x == y {
				return true
			}
		}
	}
	return false
}

func kindName(r pack.Resource) string {
	name, _ := r.Meta()
	return r.Type[strings.LastIndex(r.Type, ":")+1:] + " " + name
}

// checkRules reports each rule of a Role/ClusterRole for which bad returns a reason.
func checkRules(bad func(groups, resources, verbs []string) string) func(pack.Resource) []string {
	return func(r pack.Resource) []string {
		var msgs []string
		for i, rule := range rbacRules(r) {
			if why := bad(pack.Strings(rule["apiGroups"]), pack.Strings(rule["resources"]), pack.Strings(rule["verbs"])); why != "" {
				msgs = append(msgs, fmt.Sprintf("%s rules[%d]: %s", kindName(r), i, why))
			}
		}
		return msgs
	}
}

// annotations are the resource's metadata.annotations (nil when none).
func annotations(r pack.Resource) map[string]any {
	meta, _ := r.Props["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	return ann
}

// RBACPolicies check Roles, ClusterRoles and their bindings (CIS 5.1.x, KISA Master-04).
func RBACPolicies() []pack.Policy {
	return []pack.Policy{
		{Name: "kplane-rbac-no-wildcards", Enforcement: pack.Mandatory,
			Description: "RBAC rules name their API groups, resources and verbs; no wildcards", DescriptionKo: "RBAC 규칙은 API 그룹·리소스·동사를 명시해야 하며 와일드카드(*)를 쓸 수 없습니다",
			Remediation: "list what the service needs instead of *", RemediationKo: "* 대신 서비스에 필요한 항목만 나열하십시오",
			Controls: []pack.Control{{Framework: "CIS", ID: "5.1.3"}, {Framework: "KISA", ID: "Master-04"}, {Framework: "ISMS-P", ID: "2.5.5"}},
			Check: checkRules(func(g, r, v []string) string {
				if has(g, "*") || has(r, "*") || has(v, "*") {
					return "wildcard \"*\" in apiGroups, resources or verbs"
				}
				return ""
			})},
		{Name: "kplane-rbac-secrets", Enforcement: pack.Advisory,
			Description: "access to Secrets is limited to get on named Secrets", DescriptionKo: "Secret 접근은 이름을 지정한 get으로 제한해야 합니다",
			Remediation: "drop list/watch on secrets; name the Secrets with resourceNames, or use the hardened cluster's Vault secrets", RemediationKo: "secrets의 list/watch를 제거하고 resourceNames로 대상을 지정하거나 Vault 연동을 사용하십시오",
			Controls: []pack.Control{{Framework: "CIS", ID: "5.1.2"}, {Framework: "ISMS-P", ID: "2.7.2"}},
			Check: func(res pack.Resource) []string {
				// A kplane component that must list Secrets says why on the role (the restore
				// drill, bound only in its scratch namespaces).
				if annotations(res)[wellknown.SecretsReadReasonAnnotation] != nil {
					return nil
				}
				return checkRules(func(g, r, v []string) string {
					if has(r, "secrets") && (len(g) == 0 || has(g, "")) && has(v, "list", "watch") {
						return "list/watch on secrets reads every Secret of its scope"
					}
					return ""
				})(res)
			}},
		{Name: "kplane-rbac-escalation", Enforcement: pack.Mandatory,
			Description: "no bind, escalate or impersonate, no nodes/proxy, no pod creation cluster-wide", DescriptionKo: "bind·escalate·impersonate, nodes/proxy, 클러스터 전체 파드 생성 권한을 부여할 수 없습니다",
			Remediation: "remove the verb or resource; grant a specific Role instead", RemediationKo: "해당 동사·리소스를 제거하고 필요한 Role을 직접 부여하십시오",
			Controls: []pack.Control{{Framework: "CIS", ID: "5.1.8"}, {Framework: "CIS", ID: "5.1.4"}, {Framework: "CIS", ID: "5.1.10"}, {Framework: "KISA", ID: "Master-04"}},
			Check: func(res pack.Resource) []string {
				cluster := strings.HasSuffix(res.Type, ":ClusterRole")
				// The fleet member's deployer and entry roles say why (their reason annotation):
				// accepted on the FleetMember component's own roles, nowhere else.
				_, reasoned := annotations(res)[wellknown.EscalationReasonAnnotation].(string)
				fleet := reasoned && strings.Contains(res.URN, "kplane:index:FleetMember$")
				return checkRules(func(g, r, v []string) string {
					switch {
					case has(v, "bind", "escalate", "impersonate") && !fleet:
						return "grants bind, escalate or impersonate (privilege escalation)"
					case has(r, "nodes/proxy"):
						return "grants nodes/proxy (the kubelet API, bypassing admission and audit)"
					case cluster && has(r, "pods") && has(v, "create"):
						return "grants pod creation in every namespace"
					}
					return ""
				})(res)
			}},
		{Name: "kplane-rbac-cluster-admin", Enforcement: pack.Mandatory,
			Description: "nothing is bound to cluster-admin or system:masters", DescriptionKo: "cluster-admin 역할이나 system:masters 그룹에 바인딩하지 않습니다",
			Remediation: "bind a role with the permissions needed; keep cluster-admin for break-glass accounts outside the stack", RemediationKo: "필요한 권한만 가진 역할을 바인딩하고 cluster-admin은 비상용 계정으로만 두십시오",
			Controls: []pack.Control{{Framework: "CIS", ID: "5.1.1"}, {Framework: "CIS", ID: "5.1.7"}, {Framework: "KISA", ID: "Master-04"}, {Framework: "ISMS-P", ID: "2.5.5"}},
			Check: func(r pack.Resource) []string {
				if !strings.HasSuffix(r.Type, ":ClusterRoleBinding") && !strings.HasSuffix(r.Type, ":RoleBinding") {
					return nil
				}
				var msgs []string
				if ref, ok := r.Props["roleRef"].(map[string]any); ok && ref["name"] == "cluster-admin" {
					msgs = append(msgs, kindName(r)+": binds cluster-admin")
				}
				subjects, _ := r.Props["subjects"].([]any)
				for _, s := range subjects {
					if m, ok := s.(map[string]any); ok && m["kind"] == "Group" && m["name"] == "system:masters" {
						msgs = append(msgs, kindName(r)+": binds the group system:masters")
					}
				}
				return msgs
			}},
	}
}

// ResourceLimits requires CPU and memory limits on every container of a workload (CIS 5.7 /
// availability: one pod cannot starve its node).
func ResourceLimits() pack.Policy {
	return pack.Policy{Name: "kplane-resource-limits", Enforcement: pack.Advisory,
		Description: "every container sets CPU and memory requests and a memory limit", DescriptionKo: "모든 컨테이너는 CPU·메모리 요청과 메모리 제한을 설정해야 합니다",
		Remediation: "set resources.requests.cpu, resources.requests.memory and resources.limits.memory", RemediationKo: "resources.requests.cpu, requests.memory, limits.memory를 설정하십시오",
		Controls: []pack.Control{{Framework: "ISMS-P", ID: "2.9.2"}},
		Check: func(r pack.Resource) []string {
			if !workloadKinds[r.Type] {
				return nil
			}
			var msgs []string
			for _, c := range containers(r.Props) {
				res, _ := c["resources"].(map[string]any)
				req, _ := res["requests"].(map[string]any)
				lim, _ := res["limits"].(map[string]any)
				if req["cpu"] == nil || req["memory"] == nil || lim["memory"] == nil {
					msgs = append(msgs, fmt.Sprintf("%s container %v: resources.requests.cpu/memory and limits.memory must be set", kindName(r), c["name"]))
				}
			}
			return msgs
		}}
}

// containers are a workload's containers and init containers, wherever its pod spec is.
func containers(obj map[string]any) []map[string]any {
	spec, _ := obj["spec"].(map[string]any)
	if kind, _ := obj["kind"].(string); kind != "Pod" {
		if jt, ok := spec["jobTemplate"].(map[string]any); ok { // CronJob
			spec, _ = jt["spec"].(map[string]any)
		}
		tpl, _ := spec["template"].(map[string]any)
		spec, _ = tpl["spec"].(map[string]any)
	}
	var out []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := spec[key].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}
