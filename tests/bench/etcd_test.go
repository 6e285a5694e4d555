package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/components/backup/etcdsnapshot"
	"github.com/kplane/kplane/tests/testbed"
)

// BenchmarkEtcdSnapshot: a control plane's etcd grown to KPLANE_BENCH_ETCD_MIB (default 1024)
// of 1 MiB values, then what the snapshot CronJob does — snapshot from the live member over
// mutual TLS, verify (checksum, bbolt check, keys), upload to an S3-compatible server on
// loopback — and the restore into a new data directory with the revision bump.
func BenchmarkEtcdSnapshot(b *testing.B) {
	ctx := context.Background()
	mib := 1024
	if v, err := strconv.Atoi(os.Getenv("KPLANE_BENCH_ETCD_MIB")); err == nil && v > 0 {
		mib = v
	}
	dir := b.TempDir()
	c, err := testbed.Start(ctx, "etcd-bench", filepath.Join(dir, "cluster"), testbed.Options{NoNodes: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	pki := filepath.Join(c.Dir, "pki")
	member := etcdsnapshot.Member{Endpoint: fmt.Sprintf("https://127.0.0.1:%d", c.EtcdPort), CAFile: filepath.Join(pki, "etcd-ca.crt"),
		CertFile: filepath.Join(pki, "apiserver-etcd-client.crt"), KeyFile: filepath.Join(pki, "apiserver-etcd-client.key")}
	tlsInfo := transport.TLSInfo{TrustedCAFile: member.CAFile, CertFile: member.CertFile, KeyFile: member.KeyFile}
	tc, err := tlsInfo.ClientConfig()
	if err != nil {
		b.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{member.Endpoint}, TLS: tc, DialTimeout: 10 * time.Second, MaxCallSendMsgSize: 2 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	value := make([]byte, 1<<20)
	start := time.Now()
	for i := range mib {
		_, _ = rand.Read(value)
		if _, err := cli.Put(ctx, fmt.Sprintf("/kplane-bench/%05d", i), string(value)); err != nil {
			b.Fatal(err)
		}
	}
	report(b, time.Since(start).Seconds(), "s/fill", fmt.Sprintf("write %d MiB into etcd (1 MiB values)", mib))

	s3URL := testbed.S3(b, "backups")
	store, err := etcdsnapshot.NewStore(etcdsnapshot.Bucket{Name: "backups", Endpoint: s3URL, AccessKey: "bench", SecretKey: "bench-secret"})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "etcd.db")
	var info etcdsnapshot.Info
	for _, step := range []struct {
		what, unit string
		run        func() error
	}{
		{"snapshot from the live member (mutual TLS)", "s/snapshot", func() error { return etcdsnapshot.Save(ctx, member, path) }},
		{"verify (SHA-256, bbolt check, keys)", "s/verify", func() (err error) { info, err = etcdsnapshot.Verify(path); return err }},
		{"upload to S3 on loopback", "s/upload", func() error { info.Taken = time.Now(); _, err := store.Upload(ctx, info); return err }},
		{"restore into a new data directory (revision bump)", "s/restore", func() error {
			return etcdsnapshot.Restore(path, filepath.Join(dir, "restored"), etcdsnapshot.RestoreMember{Name: c.Name, PeerURL: "https://127.0.0.1:1"})
		}},
	} {
		start = time.Now()
		if err := step.run(); err != nil {
			b.Fatal(err)
		}
		report(b, time.Since(start).Seconds(), step.unit, step.what)
	}
	report(b, float64(info.Size)/(1<<20), "MiB/snapshot", "snapshot size")
}
