package etcdsnapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Bucket is where snapshots go: AWS S3 or any S3-compatible store.
type Bucket struct {
	Name string
	// Prefix groups one cluster's snapshots (e.g. "etcd/prod-a/").
	Prefix string
	Region string
	// Endpoint of an S3-compatible store (path-style addressing); empty for AWS.
	Endpoint string
	// AccessKey and SecretKey of a user limited to this bucket and prefix (from a Secret).
	AccessKey, SecretKey string
}

// Store puts, lists, fetches and prunes snapshots in a bucket.
type Store struct {
	b  Bucket
	s3 *s3.Client
}

// NewStore checks the bucket's settings (the bucket itself is checked by the first call).
func NewStore(b Bucket) (*Store, error) {
	switch {
	case b.Name == "":
		return nil, errors.New("bucket: required (the S3 bucket of the etcd snapshots)")
	case b.AccessKey == "" || b.SecretKey == "":
		return nil, errors.New("bucket credentials: access key and secret key are required (from the backup Secret)")
	}
	if b.Region == "" {
		b.Region = "us-east-1"
	}
	if b.Prefix != "" && !strings.HasSuffix(b.Prefix, "/") {
		b.Prefix += "/"
	}
	cfg := aws.Config{Region: b.Region, Credentials: credentials.NewStaticCredentialsProvider(b.AccessKey, b.SecretKey, "")}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if b.Endpoint != "" {
			o.BaseEndpoint = aws.String(b.Endpoint)
			o.UsePathStyle = true
		}
	})
	return &Store{b: b, s3: client}, nil
}

// explain turns S3 failures into what to check (never echoing credentials).
func (s *Store) explain(op string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("%s: bucket %q does not exist (check bucket and endpoint)", op, s.b.Name)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden":
			return fmt.Errorf("%s: bucket %q refused the credentials (%s): check the backup Secret's access key and secret key and the bucket policy", op, s.b.Name, api.ErrorCode())
		}
		return fmt.Errorf("%s: bucket %q: %s", op, s.b.Name, api.ErrorCode())
	}
	where := s.b.Endpoint
	if where == "" {
		where = "AWS S3 (" + s.b.Region + ")"
	}
	return fmt.Errorf("%s: bucket %q at %s unreachable: %w", op, s.b.Name, where, err)
}

// Key names a snapshot: sortable by time, with its revision.
func (s *Store) Key(info Info) string {
	return fmt.Sprintf("%setcd-%s-rev%d.db", s.b.Prefix, info.Taken.UTC().Format("20060102T150405Z"), info.Revision)
}

// Upload puts a verified snapshot with its checksum and revision as object metadata.
func (s *Store) Upload(ctx context.Context, info Info) (string, error) {
	f, err := os.Open(info.Path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	key := s.Key(info)
	_, err = s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.b.Name), Key: aws.String(key), Body: f, ContentLength: aws.Int64(info.Size),
		Metadata: map[string]string{"sha256": info.SHA256, "revision": strconv.FormatInt(info.Revision, 10), "keys": strconv.Itoa(info.Keys)}})
	if err != nil {
		return "", s.explain("upload", err)
	}
	return key, nil
}

// List returns the snapshots' keys, oldest first.
func (s *Store) List(ctx context.Context) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.b.Name), Prefix: aws.String(s.b.Prefix + "etcd-")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.explain("list", err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Prune deletes all but the newest keep snapshots and returns the deleted keys.
func (s *Store) Prune(ctx context.Context, keep int) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("keep %d: keep at least one snapshot", keep)
	}
	keys, err := s.List(ctx)
	if err != nil || len(keys) <= keep {
		return nil, err
	}
	old := keys[:len(keys)-keep]
	for _, k := range old {
		if _, err := s.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.b.Name), Key: aws.String(k)}); err != nil {
			return nil, s.explain("prune", err)
		}
	}
	return old, nil
}

// Download fetches a snapshot into path and checks it against the checksum recorded at upload.
func (s *Store) Download(ctx context.Context, key, path string) (Info, error) {
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.b.Name), Key: aws.String(key)})
	if err != nil {
		return Info{}, s.explain("download "+key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	if err := copyFile(path, io.TeeReader(out.Body, h)); err != nil {
		return Info{}, err
	}
	if want := out.Metadata["sha256"]; want != hex.EncodeToString(h.Sum(nil)) {
		return Info{}, fmt.Errorf("download %s: content does not match the checksum recorded at upload (%q)", key, want)
	}
	return Verify(path)
}
