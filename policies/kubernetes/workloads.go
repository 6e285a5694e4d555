// Package kubernetes holds kplane's policies for Kubernetes resources: workloads (the hardened
// cluster's admission baseline, evaluated at preview time with the very CEL the API server runs)
// and RBAC.
package kubernetes

import (
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/policies/pack"
)

// workloadKinds are the resources the admission baseline checks, as Pulumi type tokens.
var workloadKinds = map[string]bool{
	"kubernetes:core/v1:Pod": true, "kubernetes:core/v1:ReplicationController": true,
	"kubernetes:apps/v1:Deployment": true, "kubernetes:apps/v1:ReplicaSet": true, "kubernetes:apps/v1:StatefulSet": true,
	"kubernetes:apps/v1:DaemonSet": true, "kubernetes:batch/v1:Job": true, "kubernetes:batch/v1:CronJob": true,
}

// korean are the policies' descriptions and remediations in Korean.
var korean = map[string][2]string{
	"kplane-no-privileged":        {"컨테이너는 특권(privileged) 모드로 실행할 수 없습니다", "securityContext.privileged를 제거하거나 false로 설정하십시오"},
	"kplane-host-namespaces":      {"파드는 호스트의 네트워크·PID·IPC 네임스페이스를 공유할 수 없습니다", "hostNetwork, hostPID, hostIPC를 제거하고 Service로 포트를 노출하십시오"},
	"kplane-host-path":            {"파드는 호스트 경로(hostPath)를 마운트할 수 없습니다", "PersistentVolumeClaim, emptyDir, configMap 또는 secret 볼륨을 사용하십시오"},
	"kplane-host-ports":           {"컨테이너는 호스트 포트를 사용할 수 없습니다", "hostPort를 제거하고 Service로 노출하십시오"},
	"kplane-privilege-escalation": {"컨테이너는 권한 상승을 명시적으로 금지해야 합니다", "securityContext.allowPrivilegeEscalation: false를 설정하십시오"},
	"kplane-run-as-non-root":      {"컨테이너는 root가 아닌 사용자로 실행해야 합니다(명시적 선언)", "runAsNonRoot: true와 0이 아닌 runAsUser를 설정하십시오"},
	"kplane-read-only-root":       {"컨테이너의 루트 파일시스템은 읽기 전용이어야 합니다", "readOnlyRootFilesystem: true를 설정하고 쓰기 경로에 emptyDir를 마운트하십시오"},
	"kplane-capabilities":         {"컨테이너는 모든 커널 권한(capabilities)을 제거하고 NET_BIND_SERVICE만 추가할 수 있습니다", "capabilities.drop: [ALL]을 설정하고 다른 추가 권한을 제거하십시오"},
	"kplane-seccomp":              {"seccomp 프로파일은 RuntimeDefault 또는 Localhost여야 합니다", "securityContext.seccompProfile.type: RuntimeDefault를 설정하십시오"},
	"kplane-apparmor":             {"AppArmor 프로파일은 RuntimeDefault 또는 Localhost여야 합니다", "appArmorProfile의 Unconfined를 제거하십시오"},
	"kplane-selinux":              {"SELinux 옵션은 컨테이너 유형만 허용하며 user·role을 지정할 수 없습니다", "seLinuxOptions의 type을 container_t 등으로 하고 user·role을 제거하십시오"},
	"kplane-proc-mount":           {"컨테이너는 기본 /proc 마운트를 유지해야 합니다", "procMount를 제거하거나 Default로 설정하십시오"},
	"kplane-sysctls":              {"파드는 안전한 네임스페이스 sysctl만 설정할 수 있습니다", "허용 목록에 없는 sysctl을 제거하십시오"},
	"kplane-host-process":         {"Windows HostProcess 컨테이너는 허용되지 않습니다", "windowsOptions.hostProcess를 제거하십시오"},
	"kplane-probe-host":           {"프로브와 라이프사이클 핸들러는 다른 호스트를 대상으로 할 수 없습니다", "httpGet.host와 tcpSocket.host를 제거하십시오"},
	"kplane-volume-types":         {"파드는 restricted 프로파일이 허용하는 볼륨 유형만 사용할 수 있습니다", "스토리지에는 PersistentVolumeClaim을 사용하십시오"},
	"kplane-image-digest":         {"이미지는 다이제스트(@sha256)로 고정해야 합니다", "이미지를 name@sha256:... 형식으로 참조하십시오"},
	"kplane-allowed-registries":   {"이미지는 허용된 레지스트리에서만 가져올 수 있습니다", "이미지를 허용된 레지스트리에 올리고 그곳에서 참조하십시오"},
	"kplane-allowed-namespaces":   {"워크로드는 팀 네임스페이스에서만 실행할 수 있습니다", "팀 네임스페이스에 배포하거나 네임스페이스를 팀에 추가하십시오"},
}

type program struct {
	variables []struct {
		name string
		prg  cel.Program
	}
	validations []struct{ expr, msg cel.Program }
}

// WorkloadPolicies are the admission baseline for args as policies: the same CEL, evaluated on
// every workload a stack declares, so the violation shows in the preview instead of at apply.
func WorkloadPolicies(args *hardenedcluster.Args) ([]pack.Policy, error) {
	env, err := cel.NewEnv(
		cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType), cel.Variable("request", cel.DynType),
		cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)), ext.Strings())
	if err != nil {
		return nil, err
	}
	compile := func(expr string) (cel.Program, error) {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return nil, fmt.Errorf("%s: %w", expr, iss.Err())
		}
		return env.Program(ast)
	}
	var policies []pack.Policy
	for _, cp := range args.CELPolicies() {
		exempt := map[string]bool{}
		for _, ns := range args.ExemptNamespacesFor(cp.Name) {
			exempt[ns] = true
		}
		// The hardened cluster's node checks read the host by design; admission exempts their
		// namespace whenever they are on, and so does the pack.
		exempt[hardenedcluster.NodeCheckNamespace] = true
		// Compiled on first use: a pack starts (and the engine waits for it) before any resource
		// is analysed, and Pack warms these up meanwhile.
		compiled := sync.OnceValues(func() (program, error) {
			var p program
			for _, v := range cp.Variables {
				prg, err := compile(v[1])
				if err != nil {
					return p, fmt.Errorf("variable %s: %w", v[0], err)
				}
				p.variables = append(p.variables, struct {
					name string
					prg  cel.Program
				}{v[0], prg})
			}
			for _, v := range cp.Validations {
				e, err := compile(v[0])
				if err != nil {
					return p, err
				}
				m, err := compile(v[1])
				if err != nil {
					return p, fmt.Errorf("message: %w", err)
				}
				p.validations = append(p.validations, struct{ expr, msg cel.Program }{e, m})
			}
			return p, nil
		})
		ko := korean[cp.Name]
		policies = append(policies, pack.Policy{
			Name: cp.Name, Description: cp.Description, DescriptionKo: ko[0], RemediationKo: ko[1],
			Remediation: "change the field the message names as it says; the hardened cluster refuses the same workload at admission",
			Enforcement: pack.Mandatory, Controls: controls(cp.Controls),
			Check: func(r pack.Resource) []string {
				p, err := compiled()
				if err != nil { // never a silent pass
					return []string{fmt.Sprintf("%s cannot be evaluated: %v", cp.Name, err)}
				}
				return p.check(r, exempt)
			},
		})
	}
	return policies, nil
}

// controls parses "CIS 5.2.2" style references.
func controls(refs []string) []pack.Control {
	var out []pack.Control
	for _, r := range refs {
		fw, id, _ := strings.Cut(r, " ")
		out = append(out, pack.Control{Framework: fw, ID: id})
	}
	return out
}

func (p program) check(r pack.Resource, exempt map[string]bool) []string {
	if !workloadKinds[r.Type] {
		return nil
	}
	obj := normalise(r.Props).(map[string]any)
	defaultVolumes(obj)
	ns := "default"
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if n, ok := meta["namespace"].(string); ok && n != "" {
			ns = n
		}
	}
	if exempt[ns] {
		return nil
	}
	vars := map[string]any{}
	act := map[string]any{"object": obj, "oldObject": nil, "request": map[string]any{"namespace": ns, "operation": "CREATE"}, "variables": vars}
	for _, v := range p.variables {
		out, _, err := v.prg.Eval(act)
		if err != nil {
			return []string{fmt.Sprintf("cannot evaluate variable %s: %v", v.name, err)}
		}
		vars[v.name] = out.Value()
	}
	var msgs []string
	for _, v := range p.validations {
		out, _, err := v.expr.Eval(act)
		if err != nil {
			// Unknown values during a preview (outputs not known yet) cannot be judged.
			continue
		}
		if ok, _ := out.Value().(bool); ok {
			continue
		}
		msg, _, err := v.msg.Eval(act)
		if err != nil {
			msgs = append(msgs, "violation (message unavailable: "+err.Error()+")")
			continue
		}
		msgs = append(msgs, fmt.Sprint(msg.Value()))
	}
	return msgs
}

// defaultVolumes gives a volume without a source the emptyDir the API server defaults it to.
func defaultVolumes(obj map[string]any) {
	spec, _ := obj["spec"].(map[string]any)
	switch obj["kind"] {
	case "Pod":
	case "CronJob":
		spec, _ = anymap.Get(spec, "jobTemplate", "spec", "template", "spec").(map[string]any)
	default:
		spec, _ = anymap.Get(spec, "template", "spec").(map[string]any)
	}
	volumes, _ := spec["volumes"].([]any)
	for _, v := range volumes {
		if m, ok := v.(map[string]any); ok && len(m) == 1 && m["name"] != nil {
			m["emptyDir"] = map[string]any{}
		}
	}
}

// normalise makes a declared object look as the API server sees it once decoded: null fields
// are absent (CEL's has() is true for a null, so procMount: null would read as set), and
// whole-number floats (how JSON and protobuf Structs carry numbers) are int64.
func normalise(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if x != nil {
				out[k] = normalise(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalise(x)
		}
		return out
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
	}
	return v
}
