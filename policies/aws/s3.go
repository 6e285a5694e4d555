package aws

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kplane/kplane/policies/pack"
)

// bucket is one S3 bucket of the stack with what its own inputs and its configuration
// resources (pulumi-aws's BucketVersioningV2, ...V2 and BucketPublicAccessBlock) set.
type bucket struct {
	r                                            pack.Resource
	name                                         string
	encrypted, versioned, lifecycle, blockPublic bool
	public                                       []string // why the bucket is public
}

func isBucket(r pack.Resource) bool {
	return r.Type == "aws:s3/bucket:Bucket" || r.Type == "aws:s3/bucketV2:BucketV2"
}

var publicACLs = []string{"public-read", "public-read-write", "authenticated-read"}

// publicPolicy tells whether a bucket policy allows anybody ("*" principal) without a condition.
func publicPolicy(v any) bool {
	doc, _ := v.(string)
	if doc == "" || doc == pack.Unknown {
		return false
	}
	var p struct {
		Statement []struct {
			Effect    string
			Principal any
			Condition any
		}
	}
	if json.Unmarshal([]byte(doc), &p) != nil {
		return false
	}
	for _, s := range p.Statement {
		anyone := s.Principal == "*" || pack.Get(s.Principal, "AWS") == "*" || slices.Contains(pack.Strings(pack.Get(s.Principal, "AWS")), "*")
		if s.Effect == "Allow" && anyone && s.Condition == nil {
			return true
		}
	}
	return false
}

func enabledRule(rules any, field string, want any) bool {
	l, _ := rules.([]any)
	return slices.ContainsFunc(l, func(x any) bool { return pack.Get(x, field) == want })
}

func sseRules(rules any) bool {
	l, _ := rules.([]any)
	return slices.ContainsFunc(l, func(x any) bool {
		alg, _ := pack.Get(x, "applyServerSideEncryptionByDefault", "sseAlgorithm").(string)
		return alg != ""
	})
}

// buckets collects the stack's buckets. A configuration resource belongs to a bucket when its
// "bucket" input depends on it (how a preview knows, before the bucket has an ID) or names it.
func buckets(rs []pack.Resource) []*bucket {
	var out []*bucket
	for _, r := range rs {
		if !isBucket(r) {
			continue
		}
		b := &bucket{r: r, name: r.Name}
		if n, _ := r.Props["bucket"].(string); n != "" && n != pack.Unknown {
			b.name = n
		}
		p := r.Props
		if r.Type == "aws:s3/bucket:Bucket" { // the legacy bucket with inline settings
			b.encrypted = pack.Get(p, "serverSideEncryptionConfiguration", "rule", "applyServerSideEncryptionByDefault", "sseAlgorithm") != nil
			b.versioned = pack.Get(p, "versioning", "enabled") == true
		} else {
			configs, _ := p["serverSideEncryptionConfigurations"].([]any)
			for _, c := range configs {
				b.encrypted = b.encrypted || sseRules(pack.Get(c, "rules"))
			}
			b.versioned = enabledRule(p["versionings"], "enabled", true)
		}
		b.lifecycle = enabledRule(p["lifecycleRules"], "enabled", true)
		if acl, _ := p["acl"].(string); slices.Contains(publicACLs, acl) {
			b.public = append(b.public, "acl "+acl)
		}
		if publicPolicy(p["policy"]) {
			b.public = append(b.public, "its policy allows any principal")
		}
		out = append(out, b)
	}
	for _, r := range rs {
		for _, b := range out {
			if !r.DependsOn("bucket", b.r.URN) && r.Props["bucket"] != b.name {
				continue
			}
			p := r.Props
			switch r.Type {
			case "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2":
				b.encrypted = b.encrypted || sseRules(p["rules"])
			case "aws:s3/bucketVersioningV2:BucketVersioningV2":
				b.versioned = pack.Get(p, "versioningConfiguration", "status") == "Enabled"
			case "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2":
				b.lifecycle = b.lifecycle || enabledRule(p["rules"], "status", "Enabled")
			case "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
				b.blockPublic = true
				for _, f := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
					if p[f] != true {
						b.blockPublic = false
						b.public = append(b.public, "BucketPublicAccessBlock "+f+" is not true")
					}
				}
			case "aws:s3/bucketAclV2:BucketAclV2":
				if acl, _ := p["acl"].(string); slices.Contains(publicACLs, acl) {
					b.public = append(b.public, "BucketAclV2 acl "+acl)
				}
			case "aws:s3/bucketPolicy:BucketPolicy":
				if publicPolicy(p["policy"]) {
					b.public = append(b.public, "BucketPolicy allows any principal")
				}
			}
		}
	}
	return out
}

// S3Policies: buckets (backups, state, logs) are never public, and are encrypted, versioned and
// expire old versions.
func S3Policies() []pack.Policy {
	return []pack.Policy{
		{Name: "kplane-s3-not-public", Enforcement: pack.Mandatory,
			Description: "S3 buckets block public access (all four BucketPublicAccessBlock settings) and grant nothing to anyone by ACL or policy", DescriptionKo: "S3 버킷은 퍼블릭 액세스를 차단(BucketPublicAccessBlock 네 항목 모두)하고 ACL·정책으로 누구에게도 공개하지 않아야 합니다",
			Remediation: "add a BucketPublicAccessBlock with blockPublicAcls, blockPublicPolicy, ignorePublicAcls and restrictPublicBuckets true; remove public ACLs and \"*\" principals", RemediationKo: "네 항목이 모두 true인 BucketPublicAccessBlock을 추가하고 공개 ACL과 \"*\" 주체를 제거하십시오",
			Controls: []pack.Control{{Framework: "KISA", ID: "CA-10"}, {Framework: "ISMS-P", ID: "2.6.1"}},
			Applies:  isBucket, Subjects: "S3 buckets (pulumi-aws)", SubjectsKo: "pulumi-aws로 선언한 S3 버킷",
			StackCheck: func(rs []pack.Resource) []pack.Finding {
				var out []pack.Finding
				for _, b := range buckets(rs) {
					why := b.public
					if !b.blockPublic && len(why) == 0 {
						why = []string{"no BucketPublicAccessBlock"}
					}
					if len(why) > 0 {
						// Resources arrive in registration order, which is concurrent: sort for a stable message.
						slices.Sort(why)
						out = append(out, pack.Finding{URN: b.r.URN, Message: fmt.Sprintf("S3 bucket %s may be public: %s", b.name, strings.Join(why, "; "))})
					}
				}
				return out
			}},
		{Name: "kplane-s3-encrypted-versioned", Enforcement: pack.Mandatory,
			Description: "S3 buckets encrypt at rest, keep versions and expire them by a lifecycle rule", DescriptionKo: "S3 버킷은 저장 데이터를 암호화하고 버전 관리를 사용하며 수명 주기 규칙으로 만료해야 합니다",
			Remediation: "add BucketServerSideEncryptionConfigurationV2 (aws:kms or AES256), BucketVersioningV2 (Enabled) and BucketLifecycleConfigurationV2 (an Enabled rule)", RemediationKo: "BucketServerSideEncryptionConfigurationV2(aws:kms 또는 AES256), BucketVersioningV2(Enabled), BucketLifecycleConfigurationV2(Enabled 규칙)를 추가하십시오",
			Controls: []pack.Control{{Framework: "KISA", ID: "CA-18"}, {Framework: "ISMS-P", ID: "2.7.1"}, {Framework: "ISMS-P", ID: "2.9.3"}},
			Applies:  isBucket, Subjects: "S3 buckets (pulumi-aws)", SubjectsKo: "pulumi-aws로 선언한 S3 버킷",
			StackCheck: func(rs []pack.Resource) []pack.Finding {
				var out []pack.Finding
				for _, b := range buckets(rs) {
					var missing []string
					for what, ok := range map[string]bool{"encryption": b.encrypted, "versioning": b.versioned, "a lifecycle rule": b.lifecycle} {
						if !ok {
							missing = append(missing, what)
						}
					}
					if len(missing) > 0 {
						slices.Sort(missing)
						out = append(out, pack.Finding{URN: b.r.URN, Message: fmt.Sprintf("S3 bucket %s lacks %s", b.name, strings.Join(missing, ", "))})
					}
				}
				return out
			}},
	}
}
