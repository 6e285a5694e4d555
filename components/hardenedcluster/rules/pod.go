package rules

// podRules are the CIS Kubernetes Benchmark's pod rules (section 5.2, 5.6).
var podRules = []Rule{
	{Name: "kplane-no-privileged", Description: "containers may not run privileged",
		DescriptionKo: "컨테이너는 특권(privileged) 모드로 실행할 수 없습니다",
		Remediation:   "remove securityContext.privileged or set it to false", RemediationKo: "securityContext.privileged를 제거하거나 false로 설정하십시오",
		Controls: []string{"CIS 5.2.2", "KISA Master-12", "PSS baseline"},
		Validations: []Validation{{PerContainer: true, Bad: "!" + scFalse("privileged"),
			Message: "securityContext.privileged must be false (CIS 5.2.2); remove it, or add a kplane exception for this workload"}},
		Samples: []Sample{
			{Name: "privileged", Mutate: func(s map[string]any) { SC(s)["privileged"] = true; delete(SC(s), "allowPrivilegeEscalation") },
				Want: "container app: securityContext.privileged must be false (CIS 5.2.2)", Also: "kplane-privilege-escalation"},
			{Name: "privileged-init", Mutate: func(s map[string]any) {
				s["initContainers"] = []any{map[string]any{"name": "init", "image": "registry.example.com/i" + Digest,
					"securityContext": map[string]any{"privileged": true, "readOnlyRootFilesystem": true, "capabilities": map[string]any{"drop": []any{"ALL"}}}}}
			}, Want: "container init: securityContext.privileged must be false", Also: "kplane-privilege-escalation"},
		}},
	{Name: "kplane-host-namespaces", Description: "pods may not share the host's network, PID or IPC namespaces",
		DescriptionKo: "파드는 호스트의 네트워크·PID·IPC 네임스페이스를 공유할 수 없습니다",
		Remediation:   "remove hostNetwork, hostPID and hostIPC; expose ports through a Service", RemediationKo: "hostNetwork, hostPID, hostIPC를 제거하고 Service로 포트를 노출하십시오",
		Controls: []string{"CIS 5.2.3", "CIS 5.2.4", "CIS 5.2.5", "KISA Master-13", "PSS baseline"},
		Validations: []Validation{
			{Bad: "has(variables.spec.hostNetwork) && variables.spec.hostNetwork", Message: "spec.hostNetwork must be unset or false (CIS 5.2.5); use a Service to expose ports"},
			{Bad: "has(variables.spec.hostPID) && variables.spec.hostPID", Message: "spec.hostPID must be unset or false (CIS 5.2.3)"},
			{Bad: "has(variables.spec.hostIPC) && variables.spec.hostIPC", Message: "spec.hostIPC must be unset or false (CIS 5.2.4)"},
		},
		Samples: []Sample{
			{Name: "host-network", Mutate: func(s map[string]any) { s["hostNetwork"] = true }, Want: "spec.hostNetwork must be unset or false (CIS 5.2.5)"},
			{Name: "host-pid", Mutate: func(s map[string]any) { s["hostPID"] = true }, Want: "spec.hostPID must be unset or false"},
		}},
	{Name: "kplane-host-path", Description: "pods may not mount host paths",
		DescriptionKo: "파드는 호스트 경로(hostPath)를 마운트할 수 없습니다",
		Remediation:   "use a PersistentVolumeClaim, emptyDir, configMap or secret volume", RemediationKo: "PersistentVolumeClaim, emptyDir, configMap 또는 secret 볼륨을 사용하십시오",
		Controls: []string{"CIS 5.2.11", "KISA Master-13", "PSS baseline"},
		Validations: []Validation{{Bad: "has(variables.spec.volumes) && variables.spec.volumes.exists(v, has(v.hostPath))",
			Message: "spec.volumes: hostPath volumes are not allowed (CIS 5.2.11); use a PersistentVolumeClaim, emptyDir, configMap or secret"}},
		Samples: []Sample{{Name: "host-path", Mutate: func(s map[string]any) {
			s["volumes"] = []any{map[string]any{"name": "h", "hostPath": map[string]any{"path": "/etc"}}}
		}, Want: "spec.volumes: hostPath volumes are not allowed"}}},
	{Name: "kplane-host-ports", Description: "containers may not bind host ports",
		DescriptionKo: "컨테이너는 호스트 포트를 사용할 수 없습니다",
		Remediation:   "remove hostPort and expose the port through a Service", RemediationKo: "hostPort를 제거하고 Service로 노출하십시오",
		Controls: []string{"CIS 5.2.12", "PSS baseline"},
		Validations: []Validation{{PerContainer: true, Bad: "has(c.ports) && c.ports.exists(p, has(p.hostPort) && p.hostPort != 0)",
			Message: "ports[].hostPort must be unset or 0 (CIS 5.2.12); expose the port through a Service"}},
		Samples: []Sample{{Name: "host-port", Mutate: func(s map[string]any) {
			Container(s)["ports"] = []any{map[string]any{"containerPort": int64(80), "hostPort": int64(80)}}
		}, Want: "container app: ports[].hostPort must be unset or 0"}}},
	{Name: "kplane-privilege-escalation", Description: "containers must set allowPrivilegeEscalation: false",
		DescriptionKo: "컨테이너는 권한 상승을 명시적으로 금지해야 합니다",
		Remediation:   "set securityContext.allowPrivilegeEscalation: false", RemediationKo: "securityContext.allowPrivilegeEscalation: false를 설정하십시오",
		Controls: []string{"CIS 5.2.6", "KISA Master-12", "PSS restricted"}, RestrictedOnly: true,
		Validations: []Validation{{PerContainer: true, Bad: linuxOnly("!has(c.securityContext) || !has(c.securityContext.allowPrivilegeEscalation) || c.securityContext.allowPrivilegeEscalation"),
			Message: "securityContext.allowPrivilegeEscalation must be set to false (CIS 5.2.6)"}},
		Samples: []Sample{{Name: "escalation-unset", Mutate: func(s map[string]any) { delete(SC(s), "allowPrivilegeEscalation") },
			Want: "container app: securityContext.allowPrivilegeEscalation must be set to false"}}},
	{Name: "kplane-run-as-non-root", Description: "containers must run as a non-root user, declared explicitly",
		DescriptionKo: "컨테이너는 root가 아닌 사용자로 실행해야 합니다(명시적 선언)",
		Remediation:   "set runAsNonRoot: true and a non-zero runAsUser", RemediationKo: "runAsNonRoot: true와 0이 아닌 runAsUser를 설정하십시오",
		Controls: []string{"CIS 5.2.7", "KISA Master-12", "PSS restricted"}, RestrictedOnly: true,
		Validations: []Validation{
			// Container level wins; unset at both levels is a violation (the image's USER cannot be
			// seen at admission, so it must be declared and the kubelet then verifies it).
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.runAsNonRoot) ? !c.securityContext.runAsNonRoot : !(has(variables.podsc.runAsNonRoot) && variables.podsc.runAsNonRoot)",
				Message: "securityContext.runAsNonRoot must be true, on the container or the pod (CIS 5.2.7); set it and run as a non-zero runAsUser"},
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.runAsUser) ? c.securityContext.runAsUser == 0 : (has(variables.podsc.runAsUser) && variables.podsc.runAsUser == 0)",
				Message: "securityContext.runAsUser must not be 0 (root) (CIS 5.2.7); use a non-zero UID"},
		},
		Samples: []Sample{
			{Name: "root-user", Mutate: func(s map[string]any) { SC(s)["runAsUser"] = int64(0) }, Want: "container app: securityContext.runAsUser must not be 0 (root)"},
			{Name: "run-as-non-root-unset", Mutate: func(s map[string]any) { delete(PodSC(s), "runAsNonRoot") }, Want: "container app: securityContext.runAsNonRoot must be true"},
			{Name: "container-overrides-pod", Mutate: func(s map[string]any) { SC(s)["runAsNonRoot"] = false },
				Want: "container app: securityContext.runAsNonRoot must be true, on the container or the pod"},
		}},
	{Name: "kplane-read-only-root", Description: "containers must have a read-only root filesystem",
		DescriptionKo: "컨테이너의 루트 파일시스템은 읽기 전용이어야 합니다",
		Remediation:   "set readOnlyRootFilesystem: true and mount an emptyDir where the program writes", RemediationKo: "readOnlyRootFilesystem: true를 설정하고 쓰기 경로에 emptyDir를 마운트하십시오",
		Controls: []string{"CIS 5.6.3", "KISA Master-12"},
		Validations: []Validation{
			{PerContainer: true, Bad: linuxOnly("!has(c.securityContext) || !has(c.securityContext.readOnlyRootFilesystem) || !c.securityContext.readOnlyRootFilesystem"),
				Message: "securityContext.readOnlyRootFilesystem must be true; mount an emptyDir where the program writes"},
			// Windows pods cannot have one (API validation forbids the field there): refused, saying so.
			{Bad: "variables.windows", Message: "Windows pods cannot have a read-only root filesystem, which kplane requires; run the workload in an exempt namespace or give it a kplane-read-only-root exception"},
		},
		Samples: []Sample{
			{Name: "writable-root", Mutate: func(s map[string]any) { delete(SC(s), "readOnlyRootFilesystem") }, Want: "container app: securityContext.readOnlyRootFilesystem must be true"},
			{Name: "windows", Mutate: func(s map[string]any) {
				// A Windows pod as API validation allows it: none of the Linux-only fields.
				s["os"] = map[string]any{"name": "windows"}
				delete(PodSC(s), "seccompProfile")
				delete(PodSC(s), "runAsUser")
				Container(s)["securityContext"] = map[string]any{}
			}, Want: "Windows pods cannot have a read-only root filesystem"},
		}},
	{Name: "kplane-capabilities", Description: "containers drop ALL capabilities and add at most NET_BIND_SERVICE",
		DescriptionKo: "컨테이너는 모든 커널 권한(capabilities)을 제거하고 NET_BIND_SERVICE만 추가할 수 있습니다",
		Remediation:   "set capabilities.drop: [ALL] and remove every other added capability", RemediationKo: "capabilities.drop: [ALL]을 설정하고 다른 추가 권한을 제거하십시오",
		Controls: []string{"CIS 5.2.8", "CIS 5.2.9", "PSS restricted"}, RestrictedOnly: true,
		Validations: []Validation{
			{PerContainer: true, Bad: linuxOnly("!has(c.securityContext) || !has(c.securityContext.capabilities) || !has(c.securityContext.capabilities.drop) || !c.securityContext.capabilities.drop.exists(x, x == 'ALL')"),
				Message: "securityContext.capabilities.drop must include ALL (CIS 5.2.8/5.2.9)"},
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.capabilities) && has(c.securityContext.capabilities.add) && c.securityContext.capabilities.add.exists(x, x != 'NET_BIND_SERVICE')",
				Message: "securityContext.capabilities.add may only contain NET_BIND_SERVICE (CIS 5.2.9); remove the others"},
		},
		Samples: []Sample{
			{Name: "added-capability", Mutate: func(s map[string]any) { SC(s)["capabilities"].(map[string]any)["add"] = []any{"SYS_ADMIN"} },
				Want: "container app: securityContext.capabilities.add may only contain NET_BIND_SERVICE"},
			{Name: "no-drop-all", Mutate: func(s map[string]any) { delete(SC(s), "capabilities") }, Want: "container app: securityContext.capabilities.drop must include ALL"},
		}},
	{Name: "kplane-seccomp", Description: "a RuntimeDefault or Localhost seccomp profile is set, never Unconfined",
		DescriptionKo: "seccomp 프로파일은 RuntimeDefault 또는 Localhost여야 합니다",
		Remediation:   "set securityContext.seccompProfile.type: RuntimeDefault", RemediationKo: "securityContext.seccompProfile.type: RuntimeDefault를 설정하십시오",
		Controls: []string{"CIS 5.6.2", "PSS restricted"}, RestrictedOnly: true,
		Validations: []Validation{{PerContainer: true,
			Bad:     linuxOnly("has(c.securityContext) && has(c.securityContext.seccompProfile) ? !(c.securityContext.seccompProfile.type in ['RuntimeDefault', 'Localhost']) : !(has(variables.podsc.seccompProfile) && variables.podsc.seccompProfile.type in ['RuntimeDefault', 'Localhost'])"),
			Message: "securityContext.seccompProfile.type must be RuntimeDefault or Localhost, on the container or the pod (CIS 5.6.2)"}},
		Samples: []Sample{{Name: "seccomp-unconfined", Mutate: func(s map[string]any) { SC(s)["seccompProfile"] = map[string]any{"type": "Unconfined"} },
			Want: "container app: securityContext.seccompProfile.type must be RuntimeDefault or Localhost"}}},
}
