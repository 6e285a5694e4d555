package integration

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/kplane/kplane/components/backup/etcdsnapshot"
	"github.com/kplane/kplane/tests/testbed"
)

// TestEtcdThreeMemberRestore: a real three-member etcd (etcd's own server, in-process) is
// snapshotted from one member and restored from that one snapshot into three new members, each
// with its own name and peer URL and the same initial cluster (the runbook's step 3). The three
// form one cluster again: each holds what the snapshot held and not what came after, the
// revision is bumped, and a write on one is read on another.
func TestEtcdThreeMemberRestore(t *testing.T) {
	integration(t)
	ctx := context.Background()
	names := []string{"cp-a", "cp-b", "cp-c"}
	before := startEtcdCluster(t, names, "", nil)
	cli := etcdClient(t, before.clientURLs)
	for i := range 100 {
		_, err := cli.Put(ctx, fmt.Sprintf("/registry/configmaps/ledger/before-%03d", i), "1000")
		require.NoError(t, err)
	}
	snap := filepath.Join(t.TempDir(), "etcd.db")
	require.NoError(t, etcdsnapshot.Save(ctx, etcdsnapshot.Member{Endpoint: before.clientURLs[1]}, snap), "from one member")
	info, err := etcdsnapshot.Verify(snap)
	require.NoError(t, err)
	_, err = cli.Put(ctx, "/registry/configmaps/ledger/after", "lost")
	require.NoError(t, err)
	before.stop()

	// The restore, member by member, from the one snapshot.
	ports, err := testbed.FreePorts(2 * len(names))
	require.NoError(t, err)
	var peers []string
	for i, n := range names {
		peers = append(peers, fmt.Sprintf("%s=http://127.0.0.1:%d", n, ports+2*i+1))
	}
	initial := strings.Join(peers, ",")
	dirs := make([]string, len(names))
	for i, n := range names {
		dirs[i] = filepath.Join(t.TempDir(), "restored")
		require.NoError(t, etcdsnapshot.Restore(snap, dirs[i], etcdsnapshot.RestoreMember{Name: n, PeerURL: fmt.Sprintf("http://127.0.0.1:%d", ports+2*i+1), InitialCluster: initial}))
	}
	err = etcdsnapshot.Restore(snap, filepath.Join(t.TempDir(), "x"), etcdsnapshot.RestoreMember{Name: "cp-d", PeerURL: "http://127.0.0.1:1", InitialCluster: initial})
	assert.ErrorContains(t, err, "does not list this member as cp-d=http://127.0.0.1:1", "a member outside the initial cluster is refused")

	after := startEtcdCluster(t, names, initial, dirs)
	rcli := etcdClient(t, after.clientURLs)
	members, err := rcli.MemberList(ctx)
	require.NoError(t, err)
	require.Len(t, members.Members, 3, "one cluster of three, not three of one")
	for _, m := range members.Members {
		assert.Contains(t, names, m.Name)
	}
	for _, endpoint := range after.clientURLs { // each member's own copy (serializable reads)
		one := etcdClient(t, []string{endpoint})
		got, err := one.Get(ctx, "/registry/configmaps/ledger/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		require.NoError(t, err)
		assert.EqualValues(t, 100, got.Count, "%s holds the snapshot's keys and not the later one", endpoint)
		assert.Greater(t, got.Header.Revision, info.Revision+etcdsnapshot.RevisionBump-1, "the revision is bumped")
	}
	_, err = etcdClient(t, after.clientURLs[:1]).Put(ctx, "/registry/configmaps/ledger/later", "ok")
	require.NoError(t, err)
	got, err := etcdClient(t, after.clientURLs[2:]).Get(ctx, "/registry/configmaps/ledger/later")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1, "a write on one member is read on another")
}

// etcdCluster is etcd members running in this process.
type etcdCluster struct {
	members    []*embed.Etcd
	clientURLs []string
}

func (c *etcdCluster) stop() {
	for _, m := range c.members {
		m.Close()
	}
	c.members = nil
}

// startEtcdCluster starts one member per name on loopback: a new cluster (dirs nil), or members
// on restored data directories (their initial cluster given).
func startEtcdCluster(t *testing.T, names []string, initial string, dirs []string) *etcdCluster {
	t.Helper()
	ports, err := testbed.FreePorts(2 * len(names))
	require.NoError(t, err)
	if initial == "" {
		var peers []string
		for i, n := range names {
			peers = append(peers, fmt.Sprintf("%s=http://127.0.0.1:%d", n, ports+2*i+1))
		}
		initial = strings.Join(peers, ",")
	}
	c := &etcdCluster{}
	t.Cleanup(c.stop)
	for i, n := range names {
		cfg := embed.NewConfig()
		cfg.Name, cfg.InitialCluster, cfg.InitialClusterToken = n, initial, "kplane-test"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop()) // its shutdown errors are noise here
		cfg.Dir = filepath.Join(t.TempDir(), n)
		if dirs != nil {
			cfg.Dir = dirs[i]
		}
		peer, _ := url.Parse(strings.SplitN(strings.Split(initial, ",")[i], "=", 2)[1])
		client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports+2*i)}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenMetricsUrls = nil
		e, err := embed.StartEtcd(cfg)
		require.NoError(t, err, "member %s", n)
		c.members, c.clientURLs = append(c.members, e), append(c.clientURLs, client.String())
	}
	for _, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			t.Fatal(err)
		case <-time.After(60 * time.Second):
			t.Fatal("etcd members not ready in 60 s")
		}
	}
	return c
}

func etcdClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
