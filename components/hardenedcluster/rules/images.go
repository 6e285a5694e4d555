package rules

// The rules whose parameters come from the hardened cluster's arguments: where workloads may
// run and which images they may use.
const (
	// AllowedNamespaces is installed when there are teams (parameter "namespaces").
	AllowedNamespaces = "kplane-allowed-namespaces"
	// AllowedRegistries is installed when registries are given (parameter "registries").
	AllowedRegistries = "kplane-allowed-registries"
	// ImageDigest is installed unless image tags are allowed.
	ImageDigest = "kplane-image-digest"
)

var imageRules = []Rule{
	{Name: AllowedNamespaces, Description: "workloads run only in team namespaces",
		DescriptionKo: "워크로드는 팀 네임스페이스에서만 실행할 수 있습니다",
		Remediation:   "deploy into a team namespace, or add the namespace to a team", RemediationKo: "팀 네임스페이스에 배포하거나 네임스페이스를 팀에 추가하십시오",
		Controls: []string{"CIS 5.6.1", "CIS 5.6.4", "ISMS-P 2.6.1"},
		Params:   []string{"namespaces"},
		Validations: []Validation{{Bad: "!(request.namespace in {{namespaces}})", Subject: "'namespace ' + request.namespace",
			Message: "not a team namespace (CIS 5.6.4); deploy into one of {{namespaces}}, or add the namespace to a team"}},
		// Where a workload runs is not a pod-spec change.
		Samples: []Sample{{Name: "outside-team-namespaces", Mutate: func(map[string]any) {}, Namespace: "elsewhere",
			Want: "namespace elsewhere: not a team namespace (CIS 5.6.4); deploy into one of"}}},
	{Name: AllowedRegistries, Description: "images come from the allowed registries",
		DescriptionKo: "이미지는 허용된 레지스트리에서만 가져올 수 있습니다",
		Remediation:   "push the image to an allowed registry and reference it from there", RemediationKo: "이미지를 허용된 레지스트리에 올리고 그곳에서 참조하십시오",
		Controls: []string{"CIS 5.5.1", "KISA Master-17"},
		Params:   []string{"registries"},
		Validations: []Validation{{PerContainer: true, Bad: "!{{registries}}.exists(r, c.image.startsWith(r))",
			Message: "image is not from an allowed registry ({{registries}}); push it there and reference it from there"}},
		Samples: []Sample{
			{Name: "foreign-registry", Mutate: func(s map[string]any) { Container(s)["image"] = "docker.io/library/nginx" + Digest },
				Want: "container app: image is not from an allowed registry"},
			{Name: "registry-suffix", Mutate: func(s map[string]any) { Container(s)["image"] = "registry.example.com.evil.io/app" + Digest },
				Want: "container app: image is not from an allowed registry"},
			{Name: "registry-short-name", Mutate: func(s map[string]any) { Container(s)["image"] = "nginx" + Digest },
				Want: "container app: image is not from an allowed registry"},
		}},
	{Name: ImageDigest, Description: "images are pinned by digest",
		DescriptionKo: "이미지는 다이제스트(@sha256)로 고정해야 합니다",
		Remediation:   "reference the image as name@sha256:...", RemediationKo: "이미지를 name@sha256:... 형식으로 참조하십시오",
		Controls: []string{"CIS 5.5.1", "KISA Master-17"},
		Validations: []Validation{{PerContainer: true, Bad: "!c.image.contains('@sha256:')",
			Message: "image must be pinned by digest (name@sha256:...), so what was scanned and signed is what runs"}},
		Samples: []Sample{{Name: "image-tag", Mutate: func(s map[string]any) { Container(s)["image"] = "registry.example.com/app:1.0" },
			Want: "container app: image must be pinned by digest"}}},
}
