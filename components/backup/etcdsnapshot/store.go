package etcdsnapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"

	"github.com/kplane/kplane/components/backup/objstore"
)

// Bucket is where snapshots go: AWS S3 or any S3-compatible store.
type Bucket = objstore.Bucket

// Store puts, lists, fetches and prunes snapshots in a bucket.
type Store struct{ o *objstore.Store }

// NewStore checks the bucket's settings (the bucket itself is checked by the first call).
func NewStore(b Bucket) (*Store, error) {
	o, err := objstore.New(b)
	if err != nil {
		return nil, fmt.Errorf("etcd snapshots: %w", err)
	}
	return &Store{o: o}, nil
}

// Key names a snapshot (relative to the bucket's prefix): sortable by time, with its revision.
func (s *Store) Key(info Info) string {
	return fmt.Sprintf("etcd-%s-rev%d.db", info.Taken.UTC().Format("20060102T150405Z"), info.Revision)
}

// Upload puts a verified snapshot with its checksum and revision as object metadata.
func (s *Store) Upload(ctx context.Context, info Info) (string, error) {
	key := s.Key(info)
	return key, s.o.PutFile(ctx, key, info.Path, map[string]string{"sha256": info.SHA256, "revision": strconv.FormatInt(info.Revision, 10), "keys": strconv.Itoa(info.Keys)})
}

// List returns the snapshots' keys, oldest first.
func (s *Store) List(ctx context.Context) ([]string, error) { return s.o.List(ctx, "etcd-") }

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
		if err := s.o.Delete(ctx, k); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// Download fetches a snapshot into path and checks it against the checksum recorded at upload.
func (s *Store) Download(ctx context.Context, key, path string) (Info, error) {
	body, meta, err := s.o.Get(ctx, key)
	if err != nil {
		return Info{}, err
	}
	defer body.Close()
	h := sha256.New()
	if err := copyFile(path, io.TeeReader(body, h)); err != nil {
		return Info{}, err
	}
	if want := meta["sha256"]; want != hex.EncodeToString(h.Sum(nil)) {
		return Info{}, fmt.Errorf("download %s: content does not match the checksum recorded at upload (%q)", key, want)
	}
	return Verify(path)
}
