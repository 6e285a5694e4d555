// Package aws holds kplane's policies for clusters and storage declared with pulumi-aws (the
// owner's cloud package): what a managed control plane must be set to, since its flags are not
// the platform's to set.
package aws

import (
	"fmt"
	"slices"

	"github.com/kplane/kplane/policies/pack"
)

const eksCluster = "aws:eks/cluster:Cluster"

func isEKS(r pack.Resource) bool { return r.Type == eksCluster }

// first returns an object input that pulumi-aws spells as an object or a one-element list.
func first(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	if l, ok := v.([]any); ok && len(l) > 0 {
		m, _ := l[0].(map[string]any)
		return m
	}
	return nil
}

// EKSPolicies: the EKS control plane audits, limits who reaches its endpoint and encrypts
// Secrets with a KMS key (the managed equivalents of the API server flags kplane checks on nodes).
func EKSPolicies() []pack.Policy {
	return []pack.Policy{
		{Name: "kplane-eks-audit-logs", Enforcement: pack.Mandatory,
			Description: "EKS control plane logs include audit and authenticator", DescriptionKo: "EKS 컨트롤 플레인 로그에 audit과 authenticator를 포함해야 합니다",
			Remediation: `set enabledClusterLogTypes to include "audit" and "authenticator"`, RemediationKo: `enabledClusterLogTypes에 "audit"과 "authenticator"를 포함하십시오`,
			Controls: []pack.Control{{Framework: "CIS", ID: "3.2.1"}, {Framework: "KISA", ID: "Master-07"}, {Framework: "ISMS-P", ID: "2.9.4"}},
			Applies:  isEKS, Subjects: "EKS clusters (pulumi-aws)", SubjectsKo: "pulumi-aws로 선언한 EKS 클러스터", Check: func(r pack.Resource) []string {
				if r.Type != eksCluster {
					return nil
				}
				types := pack.Strings(r.Props["enabledClusterLogTypes"])
				var missing []string
				for _, t := range []string{"audit", "authenticator"} {
					if !slices.Contains(types, t) {
						missing = append(missing, t)
					}
				}
				if len(missing) > 0 {
					return []string{fmt.Sprintf("EKS cluster %s: enabledClusterLogTypes lacks %v", r.Name, missing)}
				}
				return nil
			}},
		{Name: "kplane-eks-endpoint-access", Enforcement: pack.Mandatory,
			Description: "the EKS API endpoint is private, or public only to listed networks", DescriptionKo: "EKS API 엔드포인트는 비공개이거나 허용된 네트워크에만 공개해야 합니다",
			Remediation: "set vpcConfig.endpointPublicAccess false, or publicAccessCidrs to your networks (the hardened cluster's AllowedCIDRs output)", RemediationKo: "vpcConfig.endpointPublicAccess를 false로 하거나 publicAccessCidrs를 허용 네트워크로 제한하십시오",
			Controls: []pack.Control{{Framework: "KISA", ID: "Master-01"}, {Framework: "ISMS-P", ID: "2.6.1"}},
			Applies:  isEKS, Subjects: "EKS clusters (pulumi-aws)", SubjectsKo: "pulumi-aws로 선언한 EKS 클러스터", Check: func(r pack.Resource) []string {
				if r.Type != eksCluster {
					return nil
				}
				vpc := first(r.Props["vpcConfig"])
				if public, ok := vpc["endpointPublicAccess"].(bool); ok && !public {
					return nil
				}
				cidrs := pack.Strings(vpc["publicAccessCidrs"])
				if len(cidrs) == 0 || slices.Contains(cidrs, "0.0.0.0/0") {
					return []string{fmt.Sprintf("EKS cluster %s: the API endpoint is public to the whole internet", r.Name)}
				}
				return nil
			}},
		{Name: "kplane-eks-secrets-encryption", Enforcement: pack.Mandatory,
			Description: "EKS encrypts Kubernetes Secrets with a KMS key", DescriptionKo: "EKS는 Kubernetes Secret을 KMS 키로 암호화해야 합니다",
			Remediation: `set encryptionConfig {resources: ["secrets"], provider: {keyArn: <KMS key>}}`, RemediationKo: `encryptionConfig에 resources: ["secrets"]와 KMS 키를 지정하십시오`,
			Controls: []pack.Control{{Framework: "CIS", ID: "1.2.27"}, {Framework: "KISA", ID: "Master-10"}, {Framework: "ISMS-P", ID: "2.7.1"}},
			Applies:  isEKS, Subjects: "EKS clusters (pulumi-aws)", SubjectsKo: "pulumi-aws로 선언한 EKS 클러스터", Check: func(r pack.Resource) []string {
				if r.Type != eksCluster {
					return nil
				}
				enc := first(r.Props["encryptionConfig"])
				if !slices.Contains(pack.Strings(enc["resources"]), "secrets") || first(enc["provider"])["keyArn"] == nil {
					return []string{fmt.Sprintf("EKS cluster %s: Secrets are not encrypted with a KMS key", r.Name)}
				}
				return nil
			}},
	}
}
