package backup

import (
	"encoding/json"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/aws"
	"github.com/kplane/kplane/policies/pack"
)

func TestAWSBucketValidate(t *testing.T) {
	require.NoError(t, AWSBucketArgs{Name: "acme-backups"}.Validate())
	for _, c := range []struct {
		a    AWSBucketArgs
		want string
	}{
		{AWSBucketArgs{Name: "Acme_Backups"}, `name "Acme_Backups": an S3 bucket name`},
		{AWSBucketArgs{Name: "acme-backups", ObjectLock: &ObjectLock{Mode: "STRICT", Days: 7}}, "GOVERNANCE or COMPLIANCE"},
		{AWSBucketArgs{Name: "acme-backups", ObjectLock: &ObjectLock{Days: 0}}, "at least one day"},
		{AWSBucketArgs{Name: "acme-backups", KeepVersionsDays: 7, ObjectLock: &ObjectLock{Days: 30}}, "shorter than objectLock.days"},
	} {
		assert.ErrorContains(t, c.a.Validate(), c.want)
	}
}

// TestAWSBucket: the bucket passes kplane's own S3 policies (never public, encrypted, versioned,
// old versions expired), and its user may touch only the backup prefixes, over TLS.
func TestAWSBucket(t *testing.T) {
	rec := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewAWSBucket(ctx, "backups", &AWSBucketArgs{Name: "acme-backups", KMSKeyID: "arn:aws:kms:ap-northeast-2:111122223333:key/abc",
			ObjectLock: &ObjectLock{Mode: "COMPLIANCE", Days: 14}})
		return err
	}, pulumi.WithMocks("kplane", "prod", rec)))
	p := &pack.Pack{Name: "t", Version: "0", Policies: aws.S3Policies()}
	require.NoError(t, p.Validate())
	assert.Empty(t, p.EvaluateStack(rec.Resources, nil), "kplane's S3 policies pass")
	var doc struct {
		Statement []struct {
			Sid, Effect string
			Action      any
			Resource    any
			Condition   map[string]map[string]any
		}
	}
	kinds := map[string]bool{}
	for _, r := range rec.Resources {
		kinds[r.Type] = true
		switch r.Type {
		case "aws:iam/userPolicy:UserPolicy":
			require.NoError(t, json.Unmarshal([]byte(r.Props["policy"].(string)), &doc))
		case "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2":
			assert.Equal(t, "COMPLIANCE", pack.Get(r.Props, "rule", "defaultRetention", "mode"))
		case "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2":
			raw, _ := json.Marshal(r.Props)
			assert.Contains(t, string(raw), `"sseAlgorithm":"aws:kms"`)
		}
	}
	assert.True(t, kinds["aws:iam/accessKey:AccessKey"] && kinds["aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"])
	require.Len(t, doc.Statement, 3)
	assert.Equal(t, []any{"velero/*", "etcd/*"}, doc.Statement[0].Condition["StringLike"]["s3:prefix"])
	assert.Equal(t, []any{"/velero/*", "/etcd/*"}, doc.Statement[1].Resource, "the bucket's ARN (unknown under mocks), then the prefixes")
	assert.Equal(t, "Deny", doc.Statement[2].Effect)
}
