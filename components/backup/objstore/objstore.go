// Package objstore is kplane's access to backup buckets: AWS S3 or any S3-compatible store
// (path-style), with errors that say what to check and never echo credentials.
package objstore

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/kplane/kplane/internal/trust"
)

// Bucket is where backups go.
type Bucket struct {
	Name string
	// Prefix groups one cluster's objects (e.g. "etcd/prod-a/").
	Prefix string
	Region string
	// Endpoint of an S3-compatible store (path-style addressing); empty for AWS.
	Endpoint string
	// AccessKey and SecretKey of a user limited to this bucket and prefix (from a Secret).
	AccessKey, SecretKey string
	// CAFile (PEM) is trusted besides the system's CAs: a store whose certificate a private CA signed.
	CAFile string
}

// Flags registers the bucket's flags on fs (--bucket, --prefix, --region, --s3-endpoint,
// --s3-ca); the credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never flags.
func Flags(fs *flag.FlagSet) *Bucket {
	b := &Bucket{AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
	fs.StringVar(&b.Name, "bucket", "", "the S3 bucket")
	fs.StringVar(&b.Prefix, "prefix", "", "key prefix in the bucket")
	fs.StringVar(&b.Region, "region", "us-east-1", "bucket region")
	fs.StringVar(&b.Endpoint, "s3-endpoint", "", "S3-compatible endpoint (empty: AWS)")
	fs.StringVar(&b.CAFile, "s3-ca", "", "PEM CA of the S3-compatible endpoint's certificate (besides the system's)")
	return b
}

// Store reads and writes objects under the bucket's prefix.
type Store struct {
	B  Bucket
	s3 *s3.Client
}

// New checks the bucket's settings (the bucket itself is checked by the first call).
func New(b Bucket) (*Store, error) {
	switch {
	case b.Name == "":
		return nil, errors.New("bucket: required")
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
	if b.CAFile != "" {
		tlsConfig, err := trust.Config(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bucket CA: %w", err)
		}
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { t.TLSClientConfig = tlsConfig })
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if b.Endpoint != "" {
			o.BaseEndpoint = aws.String(b.Endpoint)
			o.UsePathStyle = true
		}
	})
	return &Store{B: b, s3: client}, nil
}

// Explain turns S3 failures into what to check.
func (s *Store) Explain(op string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("%s: bucket %q does not exist (check bucket and endpoint)", op, s.B.Name)
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s: no such object in bucket %q", op, s.B.Name)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden":
			return fmt.Errorf("%s: bucket %q refused the credentials (%s): check the backup Secret's access key and secret key and the bucket policy", op, s.B.Name, api.ErrorCode())
		}
		return fmt.Errorf("%s: bucket %q: %s", op, s.B.Name, api.ErrorCode())
	}
	where := s.B.Endpoint
	if where == "" {
		where = "AWS S3 (" + s.B.Region + ")"
	}
	return fmt.Errorf("%s: bucket %q at %s unreachable: %w", op, s.B.Name, where, err)
}

// PutFile uploads a file to key (under the prefix) with metadata.
func (s *Store) PutFile(ctx context.Context, key, path string, meta map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.B.Name), Key: aws.String(s.B.Prefix + key), Body: f, ContentLength: aws.Int64(fi.Size()), Metadata: meta})
	if err != nil {
		return s.Explain("upload "+key, err)
	}
	return nil
}

// Put uploads body to key (under the prefix) with metadata.
func (s *Store) Put(ctx context.Context, key string, body []byte, meta map[string]string) error {
	_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.B.Name), Key: aws.String(s.B.Prefix + key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), Metadata: meta})
	if err != nil {
		return s.Explain("upload "+key, err)
	}
	return nil
}

// Get opens key (under the prefix) with its metadata.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, map[string]string, error) {
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.B.Name), Key: aws.String(s.B.Prefix + key)})
	if err != nil {
		return nil, nil, s.Explain("download "+key, err)
	}
	return out.Body, out.Metadata, nil
}

// List returns the keys under the prefix that start with start, relative to the prefix, sorted.
func (s *Store) List(ctx context.Context, start string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.B.Name), Prefix: aws.String(s.B.Prefix + start)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.Explain("list", err)
		}
		for _, o := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), s.B.Prefix))
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete removes key (under the prefix).
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.B.Name), Key: aws.String(s.B.Prefix + key)}); err != nil {
		return s.Explain("delete "+key, err)
	}
	return nil
}
