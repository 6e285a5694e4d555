package rules

import (
	"fmt"
	"strings"
)

// The rest of the Pod Security Standards (baseline and restricted, Kubernetes 1.37), so the
// baseline is complete even where Pod Security Admission is off or set to a lower level.
var podSecurityRules = []Rule{
	{Name: "kplane-apparmor", Description: "AppArmor profiles are RuntimeDefault or Localhost, never Unconfined",
		DescriptionKo: "AppArmor 프로파일은 RuntimeDefault 또는 Localhost여야 합니다",
		Remediation:   "remove Unconfined from appArmorProfile and the AppArmor annotations", RemediationKo: "appArmorProfile의 Unconfined를 제거하십시오",
		Controls: []string{"PSS baseline", "KISA Master-12"},
		Validations: []Validation{
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.appArmorProfile) && !(c.securityContext.appArmorProfile.type in ['RuntimeDefault', 'Localhost'])",
				Message: "securityContext.appArmorProfile.type must be RuntimeDefault or Localhost; remove Unconfined"},
			{Bad: "has(variables.podsc.appArmorProfile) && !(variables.podsc.appArmorProfile.type in ['RuntimeDefault', 'Localhost'])",
				Message: "spec.securityContext.appArmorProfile.type must be RuntimeDefault or Localhost; remove Unconfined"},
			// The annotation form (deprecated, still applied by the kubelet): the API server copies
			// it into the field for bare Pods only, so a controller's template must be judged here.
			{Bad: "variables.annotations.exists(k, " + appArmorAnnotationBad + ")",
				Subject: "'annotation ' + variables.annotations.filter(k, " + appArmorAnnotationBad + ")[0]",
				Message: "AppArmor annotations (container.apparmor.security.beta.kubernetes.io/*) must be runtime/default or localhost/<profile>; remove unconfined, or use securityContext.appArmorProfile"},
		},
		Samples: []Sample{
			{Name: "apparmor-unconfined", Mutate: func(s map[string]any) { SC(s)["appArmorProfile"] = map[string]any{"type": "Unconfined"} },
				Want: "container app: securityContext.appArmorProfile.type must be RuntimeDefault or Localhost"},
			{Name: "apparmor-pod", Mutate: func(s map[string]any) { PodSC(s)["appArmorProfile"] = map[string]any{"type": "Unconfined"} },
				Want: "spec.securityContext.appArmorProfile.type must be RuntimeDefault or Localhost"},
			{Name: "apparmor-annotation", Mutate: func(map[string]any) {},
				Want:        "annotation container.apparmor.security.beta.kubernetes.io/app: AppArmor annotations (container.apparmor.security.beta.kubernetes.io/*) must be runtime/default or localhost/<profile>",
				Annotations: map[string]any{"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
		},
	},
	{Name: "kplane-selinux", Description: "SELinux options keep a container type and set no user or role",
		DescriptionKo: "SELinux 옵션은 컨테이너 유형만 허용하며 user·role을 지정할 수 없습니다",
		Remediation:   "set seLinuxOptions.type to a container type such as container_t and remove user and role", RemediationKo: "seLinuxOptions의 type을 container_t 등으로 하고 user·role을 제거하십시오",
		Controls: []string{"PSS baseline"},
		Validations: []Validation{
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.seLinuxOptions) && " + seLinuxBad("c.securityContext.seLinuxOptions"),
				Message: "securityContext.seLinuxOptions: type must be unset or " + strings.Join(seLinuxTypes, ", ") + ", and user and role unset"},
			{Bad: "has(variables.podsc.seLinuxOptions) && " + seLinuxBad("variables.podsc.seLinuxOptions"),
				Message: "spec.securityContext.seLinuxOptions: type must be unset or " + strings.Join(seLinuxTypes, ", ") + ", and user and role unset"},
		},
		Samples: []Sample{
			{Name: "selinux-user", Mutate: func(s map[string]any) { SC(s)["seLinuxOptions"] = map[string]any{"user": "system_u"} },
				Want: "container app: securityContext.seLinuxOptions: type must be unset or container_t"},
			{Name: "selinux-type", Mutate: func(s map[string]any) { PodSC(s)["seLinuxOptions"] = map[string]any{"type": "spc_t"} },
				Want: "spec.securityContext.seLinuxOptions: type must be unset or container_t"},
		},
	},
	{Name: "kplane-proc-mount", Description: "containers keep the Default /proc mount",
		DescriptionKo: "컨테이너는 기본 /proc 마운트를 유지해야 합니다",
		Remediation:   "remove procMount or set it to Default", RemediationKo: "procMount를 제거하거나 Default로 설정하십시오",
		Controls: []string{"PSS baseline", "PSS restricted"}, RestrictedOnly: true,
		Validations: []Validation{{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.procMount) && c.securityContext.procMount != 'Default'",
			Message: "securityContext.procMount must be unset or Default; Unmasked exposes the host's /proc"}},
		Samples: []Sample{{Name: "proc-unmasked", Mutate: func(s map[string]any) { SC(s)["procMount"] = "Unmasked"; s["hostUsers"] = false },
			Want: "container app: securityContext.procMount must be unset or Default"}},
	},
	{Name: "kplane-sysctls", Description: "pods set only namespaced, safe sysctls",
		DescriptionKo: "파드는 안전한 네임스페이스 sysctl만 설정할 수 있습니다",
		Remediation:   "remove the sysctls that are not on the safe list", RemediationKo: "허용 목록에 없는 sysctl을 제거하십시오",
		Controls: []string{"PSS baseline"},
		Validations: []Validation{{Bad: "has(variables.podsc.sysctls) && variables.podsc.sysctls.exists(s, !(s.name in " + celList(safeSysctls) + "))",
			Subject: "'sysctl ' + variables.podsc.sysctls.filter(s, !(s.name in " + celList(safeSysctls) + "))[0].name",
			Message: "spec.securityContext.sysctls may only set the safe sysctls (" + strings.Join(safeSysctls, ", ") + ")"}},
		Samples: []Sample{{Name: "unsafe-sysctl", Mutate: func(s map[string]any) {
			PodSC(s)["sysctls"] = []any{map[string]any{"name": "net.ipv4.tcp_syncookies", "value": "1"}, map[string]any{"name": "kernel.msgmax", "value": "65536"}}
		}, Want: "sysctl kernel.msgmax: spec.securityContext.sysctls may only set the safe sysctls"}},
	},
	{Name: "kplane-host-process", Description: "no Windows HostProcess containers",
		DescriptionKo: "Windows HostProcess 컨테이너는 허용되지 않습니다",
		Remediation:   "remove windowsOptions.hostProcess", RemediationKo: "windowsOptions.hostProcess를 제거하십시오",
		Controls: []string{"CIS 5.2.10", "PSS baseline"},
		Validations: []Validation{
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.windowsOptions) && has(c.securityContext.windowsOptions.hostProcess) && c.securityContext.windowsOptions.hostProcess",
				Message: "securityContext.windowsOptions.hostProcess must be unset or false"},
			{Bad: "has(variables.podsc.windowsOptions) && has(variables.podsc.windowsOptions.hostProcess) && variables.podsc.windowsOptions.hostProcess",
				Message: "spec.securityContext.windowsOptions.hostProcess must be unset or false"},
		},
		Samples: []Sample{{Name: "hostproc", Mutate: func(s map[string]any) {
			SC(s)["windowsOptions"] = map[string]any{"hostProcess": true}
			s["hostNetwork"] = true
		}, Want: "container app: securityContext.windowsOptions.hostProcess must be unset or false", Also: "kplane-host-namespaces"}},
	},
	{Name: "kplane-probe-host", Description: "probes and lifecycle hooks may not target another host",
		DescriptionKo: "프로브와 라이프사이클 핸들러는 다른 호스트를 대상으로 할 수 없습니다",
		Remediation:   "remove httpGet.host and tcpSocket.host from probes and lifecycle handlers", RemediationKo: "httpGet.host와 tcpSocket.host를 제거하십시오",
		Controls: []string{"PSS baseline"},
		Validations: []Validation{{PerContainer: true, Bad: handlerHostSet(),
			Message: "probes and lifecycle handlers must leave httpGet.host and tcpSocket.host unset (the pod's own IP)"}},
		Samples: []Sample{{Name: "probe-host", Mutate: func(s map[string]any) {
			Container(s)["readinessProbe"] = map[string]any{"tcpSocket": map[string]any{"port": int64(8080)}}
			Container(s)["livenessProbe"] = map[string]any{"httpGet": map[string]any{"port": int64(8080), "host": "169.254.169.254"}}
		}, Want: "container app: probes and lifecycle handlers must leave httpGet.host and tcpSocket.host unset"}},
	},
	{Name: "kplane-volume-types", Description: "pods use only the restricted volume types",
		DescriptionKo: "파드는 restricted 프로파일이 허용하는 볼륨 유형만 사용할 수 있습니다",
		Remediation:   "use a PersistentVolumeClaim for storage", RemediationKo: "스토리지에는 PersistentVolumeClaim을 사용하십시오",
		Controls: []string{"PSS restricted", "CIS 5.2.11"}, RestrictedOnly: true,
		Validations: []Validation{{Bad: "has(variables.spec.volumes) && variables.spec.volumes.exists(v, " + badVolume + ")",
			Subject: "'volume ' + variables.spec.volumes.filter(v, " + badVolume + ")[0].name",
			Message: "only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret volumes are allowed; use a PersistentVolumeClaim for storage"}},
		Samples: []Sample{{Name: "nfs-volume", Mutate: func(s map[string]any) {
			s["volumes"] = []any{map[string]any{"name": "cache", "emptyDir": map[string]any{}}, map[string]any{"name": "share", "nfs": map[string]any{"server": "nfs.example.com", "path": "/export"}}}
		}, Want: "volume share: only configMap, csi, downwardAPI, emptyDir"}},
	},
}

// appArmorAnnotationBad: annotation key k is an AppArmor profile other than the default or a
// local one (Pod Security baseline allows those and an empty value).
const appArmorAnnotationBad = "k.startsWith('container.apparmor.security.beta.kubernetes.io/') && !(variables.annotations[k] in ['', 'runtime/default'] || variables.annotations[k].startsWith('localhost/'))"

// seLinuxTypes are the SELinux types Pod Security baseline allows (1.31+).
var seLinuxTypes = []string{"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

// safeSysctls are the sysctls Pod Security baseline allows (Kubernetes 1.37).
var safeSysctls = []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_notsent_lowat", "net.ipv4.tcp_rmem", "net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_syncookies", "net.ipv4.tcp_wmem"}

// badVolume: a volume of a type restricted pods may not use (hostPath has its own policy).
const badVolume = "!(has(v.hostPath) || has(v.configMap) || has(v.csi) || has(v.downwardAPI) || has(v.emptyDir) || has(v.ephemeral) || has(v.image) || has(v.persistentVolumeClaim) || has(v.projected) || has(v.secret))"

func seLinuxBad(o string) string {
	return fmt.Sprintf("((has(%[1]s.type) && !(%[1]s.type in %[2]s)) || has(%[1]s.user) || has(%[1]s.role))", o, celList(append([]string{""}, seLinuxTypes...)))
}

// handlerHostSet is true when any probe or lifecycle handler of container c names a host.
func handlerHostSet() string {
	var terms []string
	for _, h := range []string{"c.livenessProbe", "c.readinessProbe", "c.startupProbe", "c.lifecycle.postStart", "c.lifecycle.preStop"} {
		guard := "has(" + h + ")"
		if strings.HasPrefix(h, "c.lifecycle.") {
			guard = "has(c.lifecycle) && " + guard
		}
		for _, action := range []string{"httpGet", "tcpSocket"} {
			terms = append(terms, fmt.Sprintf("(%[1]s && has(%[2]s.%[3]s) && has(%[2]s.%[3]s.host) && %[2]s.%[3]s.host != '')", guard, h, action))
		}
	}
	return strings.Join(terms, " || ")
}
