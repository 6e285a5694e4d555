package aws

import (
	"testing"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/pack"
)

// TestS3Policies declares buckets with pulumi-aws's own SDK (it cannot preview here: its
// provider plugin does not build) and runs the stack policies on what it registers.
func TestS3Policies(t *testing.T) {
	rec := &pack.Recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		// backups: every protection as separate resources (pulumi-aws v6's recommended form).
		b, err := s3.NewBucketV2(ctx, "backups", &s3.BucketV2Args{})
		if err != nil {
			return err
		}
		if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, "backups", &s3.BucketServerSideEncryptionConfigurationV2Args{Bucket: b.ID(),
			Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
				ApplyServerSideEncryptionByDefault: s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{SseAlgorithm: pulumi.String("aws:kms")}}}}); err != nil {
			return err
		}
		if _, err := s3.NewBucketVersioningV2(ctx, "backups", &s3.BucketVersioningV2Args{Bucket: b.ID(),
			VersioningConfiguration: s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")}}); err != nil {
			return err
		}
		if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, "backups", &s3.BucketLifecycleConfigurationV2Args{Bucket: b.ID(),
			Rules: s3.BucketLifecycleConfigurationV2RuleArray{s3.BucketLifecycleConfigurationV2RuleArgs{Id: pulumi.String("expire"), Status: pulumi.String("Enabled"),
				NoncurrentVersionExpiration: s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{NoncurrentDays: pulumi.Int(90)}}}}); err != nil {
			return err
		}
		if _, err := s3.NewBucketPublicAccessBlock(ctx, "backups", &s3.BucketPublicAccessBlockArgs{Bucket: b.ID(), BlockPublicAcls: pulumi.Bool(true),
			BlockPublicPolicy: pulumi.Bool(true), IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true)}); err != nil {
			return err
		}
		// site: public by a loosened block and a policy for anybody; nothing else.
		site, err := s3.NewBucketV2(ctx, "site", &s3.BucketV2Args{Bucket: pulumi.String("kplane-site")})
		if err != nil {
			return err
		}
		if _, err := s3.NewBucketPublicAccessBlock(ctx, "site", &s3.BucketPublicAccessBlockArgs{Bucket: site.ID(), BlockPublicAcls: pulumi.Bool(true),
			BlockPublicPolicy: pulumi.Bool(false), IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true)}); err != nil {
			return err
		}
		if _, err := s3.NewBucketPolicy(ctx, "site", &s3.BucketPolicyArgs{Bucket: site.ID(),
			Policy: pulumi.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::kplane-site/*"}]}`)}); err != nil {
			return err
		}
		// legacy: the v5-style bucket with inline settings and a public ACL.
		_, err = s3.NewBucket(ctx, "legacy", &s3.BucketArgs{Acl: pulumi.String("public-read"),
			Versioning: s3.BucketVersioningArgs{Enabled: pulumi.Bool(true)},
			ServerSideEncryptionConfiguration: s3.BucketServerSideEncryptionConfigurationArgs{Rule: s3.BucketServerSideEncryptionConfigurationRuleArgs{
				ApplyServerSideEncryptionByDefault: s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs{SseAlgorithm: pulumi.String("AES256")}}},
			LifecycleRules: s3.BucketLifecycleRuleArray{s3.BucketLifecycleRuleArgs{Enabled: pulumi.Bool(true), Expiration: s3.BucketLifecycleRuleExpirationArgs{Days: pulumi.Int(30)}}}})
		return err
	}, pulumi.WithMocks("kplane", "test", rec))
	require.NoError(t, err)

	p := &pack.Pack{Name: "t", Version: "0", Policies: S3Policies()}
	require.NoError(t, p.Validate())
	var got []string
	for _, v := range p.EvaluateStack(rec.Resources, nil) {
		got = append(got, v.Policy.Name+": "+v.Message)
	}
	assert.ElementsMatch(t, []string{
		"kplane-s3-not-public: S3 bucket kplane-site may be public: BucketPolicy allows any principal; BucketPublicAccessBlock blockPublicPolicy is not true",
		"kplane-s3-encrypted-versioned: S3 bucket kplane-site lacks a lifecycle rule, encryption, versioning",
		"kplane-s3-not-public: S3 bucket legacy may be public: acl public-read",
	}, got)
}
