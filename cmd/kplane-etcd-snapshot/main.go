// Command kplane-etcd-snapshot is what the etcd snapshot CronJob runs, and what an operator runs
// to restore:
//
//	kplane-etcd-snapshot save    --endpoint URL --cacert F --cert F --key F --bucket B [--prefix P] [--s3-endpoint URL [--s3-ca F]] [--keep N]
//	kplane-etcd-snapshot restore --bucket B [--prefix P] [--snapshot KEY|latest] --data-dir DIR --name NAME --peer-url URL
//	                             [--initial-cluster NAME=URL,... [--initial-cluster-token T]]
//
// The bucket's credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. save takes a
// snapshot from one live member, verifies it, uploads it and keeps the newest N; it prints one
// JSON report line and exits non-zero on any failure (the CronJob's failed Job is the alert).
package main

import (
	// Root certificates compiled in: the image holds this binary alone (internal/images).
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kplane/kplane/components/backup/etcdsnapshot"
	"github.com/kplane/kplane/components/backup/objstore"
	"github.com/kplane/kplane/internal/cli"
)

const usage = "usage: kplane-etcd-snapshot save|restore [flags] (kplane-etcd-snapshot <command> -h for the flags)"

func main() {
	cli.Main("kplane-etcd-snapshot", usage, func(args []string) error { return run(context.Background(), args) })
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "save" && args[0] != "restore") {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	var m etcdsnapshot.Member
	b := objstore.Flags(fs) // the bucket, and this cluster's prefix in it
	fs.StringVar(&m.Endpoint, "endpoint", "", "client URL of one live etcd member")
	fs.StringVar(&m.CAFile, "cacert", "", "etcd's CA certificate")
	fs.StringVar(&m.CertFile, "cert", "", "client certificate etcd accepts")
	fs.StringVar(&m.KeyFile, "key", "", "its key")
	keep := fs.Int("keep", 14, "snapshots kept in the bucket")
	work := fs.String("work-dir", os.TempDir(), "where the snapshot file is written")
	key := fs.String("snapshot", "latest", "restore: the snapshot's key, or latest")
	dataDir := fs.String("data-dir", "", "restore: the new etcd data directory (must not exist)")
	var member etcdsnapshot.RestoreMember
	fs.StringVar(&member.Name, "name", "", "restore: the member's name")
	fs.StringVar(&member.PeerURL, "peer-url", "", "restore: the member's peer URL")
	fs.StringVar(&member.InitialCluster, "initial-cluster", "", "restore: every member as name=peerURL,... (the same on each member; default: this one alone)")
	fs.StringVar(&member.Token, "initial-cluster-token", "", "restore: the new cluster's token (default: derived from --initial-cluster)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	store, err := etcdsnapshot.NewStore(*b)
	if err != nil {
		return err
	}
	if args[0] == "restore" {
		return restore(ctx, store, *key, *work, *dataDir, member)
	}
	if m.Endpoint == "" {
		return errors.New("--endpoint: required (the client URL of one live etcd member)")
	}
	begin := time.Now()
	path := filepath.Join(*work, fmt.Sprintf("etcd-%d.db", begin.UnixNano()))
	defer os.Remove(path)
	if err := etcdsnapshot.Save(ctx, m, path); err != nil {
		return err
	}
	info, err := etcdsnapshot.Verify(path)
	if err != nil {
		return err
	}
	info.Taken = begin.UTC()
	uploaded, err := store.Upload(ctx, info)
	if err != nil {
		return err
	}
	pruned, err := store.Prune(ctx, *keep)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"snapshot": info, "key": uploaded, "pruned": pruned, "seconds": time.Since(begin).Seconds()})
}

func restore(ctx context.Context, store *etcdsnapshot.Store, key, work, dataDir string, member etcdsnapshot.RestoreMember) error {
	if dataDir == "" {
		return errors.New("restore: --data-dir is required (a new directory etcd will run on)")
	}
	if err := member.Validate(); err != nil {
		return err
	}
	if key == "latest" {
		keys, err := store.List(ctx)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return errors.New("restore: the bucket holds no snapshot under this prefix")
		}
		key = keys[len(keys)-1]
	}
	path := filepath.Join(work, filepath.Base(key))
	defer os.Remove(path)
	info, err := store.Download(ctx, key, path)
	if err != nil {
		return err
	}
	if err := etcdsnapshot.Restore(path, dataDir, member); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"restored": key, "snapshot": info, "dataDir": dataDir, "revisionBump": etcdsnapshot.RevisionBump})
}
