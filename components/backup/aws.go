package backup

import (
	"encoding/json"
	"regexp"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// AWSBucketArgs: the S3 bucket of a platform's backups (Velero's location, etcd snapshots) and a
// user that may only read and write under its prefixes.
type AWSBucketArgs struct {
	// Name of the bucket (globally unique).
	Name string `json:"name"`
	// KMSKeyID encrypts with a customer key (aws:kms); empty: SSE-S3 (AES256).
	KMSKeyID string `json:"kmsKeyID,omitempty"`
	// KeepVersionsDays: overwritten or deleted backups stay recoverable this long (default 30).
	KeepVersionsDays int `json:"keepVersionsDays,omitempty"`
	// ObjectLock makes backups immutable for Days (ransomware, insiders): GOVERNANCE (default;
	// removable with a special permission) or COMPLIANCE (nobody, not even the root account).
	// Only at creation: S3 cannot add object lock to an existing bucket.
	ObjectLock *ObjectLock `json:"objectLock,omitempty"`
	// Prefixes the backup user may use (default velero/ and etcd/).
	Prefixes []string `json:"prefixes,omitempty"`
}

// ObjectLock is the bucket's default retention.
type ObjectLock struct {
	Mode string `json:"mode,omitempty"`
	Days int    `json:"days"`
}

// AWSBucket is the bucket and its user's credentials.
type AWSBucket struct {
	pulumi.ResourceState
	Bucket pulumi.StringOutput `pulumi:"bucket"`
	// AccessKeyID and SecretAccessKey (a Pulumi secret) of the backup user: put them in the
	// Secret Velero's location and the etcd snapshots name.
	AccessKeyID     pulumi.StringOutput `pulumi:"accessKeyId"`
	SecretAccessKey pulumi.StringOutput `pulumi:"secretAccessKey"`
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate names the argument and the fix.
func (a AWSBucketArgs) Validate() error {
	var errs field.ErrorList
	if !bucketName.MatchString(a.Name) {
		errs.Add(field.Invalid(field.At("name"), a.Name, "an S3 bucket name (3-63 lower-case letters, digits, dots, dashes)"))
	}
	if a.KeepVersionsDays < 0 {
		errs.Add(field.Invalid(field.At("keepVersionsDays"), a.KeepVersionsDays, "zero (default 30) or more"))
	}
	if l := a.ObjectLock; l != nil {
		if l.Mode != "" && l.Mode != "GOVERNANCE" && l.Mode != "COMPLIANCE" {
			errs.Add(field.Invalid(field.At("objectLock.mode"), l.Mode, "GOVERNANCE or COMPLIANCE"))
		}
		if l.Days < 1 {
			errs.Add(field.Invalid(field.At("objectLock.days"), l.Days, "at least one day"))
		}
		if a.KeepVersionsDays > 0 && a.KeepVersionsDays < l.Days {
			errs.Addf(field.At("keepVersionsDays"), a.KeepVersionsDays, "shorter than objectLock.days %d: locked versions would outlive the rule that expires them", l.Days)
		}
	}
	return errs.OrNil()
}

// NewAWSBucket registers the bucket (versioned, encrypted, never public, old versions expired,
// optionally locked) and an IAM user with a policy limited to the bucket's prefixes.
func NewAWSBucket(ctx *pulumi.Context, name string, args *AWSBucketArgs, opts ...pulumi.ResourceOption) (*AWSBucket, error) {
	r := &AWSBucket{}
	args, err := component.Register(ctx, "AWSBackupBucket", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	a := *args
	if a.KeepVersionsDays == 0 {
		a.KeepVersionsDays = 30
	}
	if len(a.Prefixes) == 0 {
		a.Prefixes = []string{"velero/", "etcd/"}
	}
	parent := pulumi.Parent(r)
	b, err := s3.NewBucketV2(ctx, name, &s3.BucketV2Args{Bucket: pulumi.String(a.Name), ObjectLockEnabled: pulumi.Bool(a.ObjectLock != nil),
		Tags: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), wellknown.PurposeAnnotation: pulumi.String("backups")}}, parent, pulumi.Protect(true))
	if err != nil {
		return nil, err
	}
	if _, err := s3.NewBucketPublicAccessBlock(ctx, name, &s3.BucketPublicAccessBlockArgs{Bucket: b.ID(), BlockPublicAcls: pulumi.Bool(true),
		BlockPublicPolicy: pulumi.Bool(true), IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true)}, parent); err != nil {
		return nil, err
	}
	versioning, err := s3.NewBucketVersioningV2(ctx, name, &s3.BucketVersioningV2Args{Bucket: b.ID(),
		VersioningConfiguration: s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")}}, parent)
	if err != nil {
		return nil, err
	}
	sse := s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{SseAlgorithm: pulumi.String("AES256")}
	if a.KMSKeyID != "" {
		sse = s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{SseAlgorithm: pulumi.String("aws:kms"), KmsMasterKeyId: pulumi.String(a.KMSKeyID)}
	}
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name, &s3.BucketServerSideEncryptionConfigurationV2Args{Bucket: b.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: sse, BucketKeyEnabled: pulumi.Bool(a.KMSKeyID != "")}}}, parent); err != nil {
		return nil, err
	}
	// Velero and the snapshot pruning expire backups themselves; the bucket keeps what they
	// overwrite or delete for KeepVersionsDays, and drops unfinished uploads.
	if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name, &s3.BucketLifecycleConfigurationV2Args{Bucket: b.ID(),
		Rules: s3.BucketLifecycleConfigurationV2RuleArray{s3.BucketLifecycleConfigurationV2RuleArgs{
			Id: pulumi.String("kplane-old-versions"), Status: pulumi.String("Enabled"), Filter: s3.BucketLifecycleConfigurationV2RuleFilterArgs{},
			NoncurrentVersionExpiration:    s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{NoncurrentDays: pulumi.Int(a.KeepVersionsDays)},
			AbortIncompleteMultipartUpload: s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{DaysAfterInitiation: pulumi.Int(7)},
		}}}, parent, pulumi.DependsOn([]pulumi.Resource{versioning})); err != nil {
		return nil, err
	}
	if l := a.ObjectLock; l != nil {
		mode := l.Mode
		if mode == "" {
			mode = "GOVERNANCE"
		}
		if _, err := s3.NewBucketObjectLockConfigurationV2(ctx, name, &s3.BucketObjectLockConfigurationV2Args{Bucket: b.ID(),
			Rule: s3.BucketObjectLockConfigurationV2RuleArgs{DefaultRetention: s3.BucketObjectLockConfigurationV2RuleDefaultRetentionArgs{
				Mode: pulumi.String(mode), Days: pulumi.Int(l.Days)}}}, parent, pulumi.DependsOn([]pulumi.Resource{versioning})); err != nil {
			return nil, err
		}
	}
	user, err := iam.NewUser(ctx, name, &iam.UserArgs{Name: pulumi.Sprintf("kplane-backup-%s", a.Name), Path: pulumi.String("/kplane/")}, parent)
	if err != nil {
		return nil, err
	}
	policy := b.Arn.ApplyT(func(arn string) (string, error) { return backupPolicy(arn, a.Prefixes) }).(pulumi.StringOutput)
	if _, err := iam.NewUserPolicy(ctx, name, &iam.UserPolicyArgs{User: user.Name, Policy: policy}, parent); err != nil {
		return nil, err
	}
	key, err := iam.NewAccessKey(ctx, name, &iam.AccessKeyArgs{User: user.Name}, parent)
	if err != nil {
		return nil, err
	}
	r.Bucket, r.AccessKeyID = b.Bucket, key.ID().ToStringOutput()
	r.SecretAccessKey = pulumi.ToSecret(key.Secret).(pulumi.StringOutput)
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"bucket": r.Bucket, "accessKeyId": r.AccessKeyID, "secretAccessKey": r.SecretAccessKey})
}

// backupPolicy: list the bucket under the prefixes, read, write and delete objects there (Velero
// deletes expired backups, the snapshots are pruned), nothing else; TLS only.
func backupPolicy(arn string, prefixes []string) (string, error) {
	var objects, listed []string
	for _, p := range prefixes {
		objects = append(objects, arn+"/"+p+"*")
		listed = append(listed, p+"*")
	}
	doc := map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Sid": "List", "Effect": "Allow", "Action": []string{"s3:ListBucket", "s3:GetBucketLocation"}, "Resource": arn,
			"Condition": map[string]any{"StringLike": map[string]any{"s3:prefix": listed}}},
		map[string]any{"Sid": "Objects", "Effect": "Allow", "Resource": objects,
			"Action": []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}},
		map[string]any{"Sid": "TLSOnly", "Effect": "Deny", "Action": "s3:*", "Resource": []string{arn, arn + "/*"},
			"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}},
	}}
	raw, err := json.Marshal(doc)
	return string(raw), err
}
