package aws

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kplane/kplane/policies/pack"
)

func TestEKSPolicies(t *testing.T) {
	p := &pack.Pack{Name: "t", Version: "0", Policies: EKSPolicies()}
	assert.NoError(t, p.Validate())
	msgs := func(props map[string]any) []string {
		var out []string
		for _, v := range p.Evaluate(pack.Resource{Type: eksCluster, Name: "prod", Props: props}, nil) {
			out = append(out, v.Policy.Name+": "+v.Message)
		}
		return out
	}
	good := map[string]any{
		"enabledClusterLogTypes": []any{"api", "audit", "authenticator"},
		"vpcConfig":              map[string]any{"endpointPublicAccess": true, "publicAccessCidrs": []any{"203.0.113.0/24"}},
		"encryptionConfig":       map[string]any{"resources": []any{"secrets"}, "provider": map[string]any{"keyArn": "arn:aws:kms:ap-northeast-2:111122223333:key/1"}},
	}
	assert.Empty(t, msgs(good))
	assert.Empty(t, msgs(map[string]any{"enabledClusterLogTypes": good["enabledClusterLogTypes"], "encryptionConfig": good["encryptionConfig"],
		"vpcConfig": []any{map[string]any{"endpointPublicAccess": false}}}), "a private endpoint, spelt as a list")
	assert.Equal(t, []string{
		"kplane-eks-audit-logs: EKS cluster prod: enabledClusterLogTypes lacks [audit authenticator]",
		"kplane-eks-endpoint-access: EKS cluster prod: the API endpoint is public to the whole internet",
		"kplane-eks-secrets-encryption: EKS cluster prod: Secrets are not encrypted with a KMS key",
	}, msgs(map[string]any{"enabledClusterLogTypes": []any{"api"}}), "the defaults of an EKS cluster fail all three")
	assert.Empty(t, p.Evaluate(pack.Resource{Type: "aws:s3/bucketV2:BucketV2", Props: map[string]any{}}, nil))
}
