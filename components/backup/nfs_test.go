package backup

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/pack"
)

func TestNFSStoreValidate(t *testing.T) {
	good := NFSStoreArgs{Server: "nfs.internal", Path: "/exports/backups", Image: "chrislusf/seaweedfs" + digest, CredentialsSecret: "nfs-store"}
	require.NoError(t, good.Validate())
	for _, c := range []struct {
		mutate func(*NFSStoreArgs)
		want   string
	}{
		{func(a *NFSStoreArgs) { a.Server = "" }, `nfsStore.server "": the NFS server's host name or IP address`},
		{func(a *NFSStoreArgs) { a.Server = "nfs://x" }, `nfsStore.server "nfs://x"`},
		{func(a *NFSStoreArgs) { a.Path = "exports" }, `nfsStore.path "exports": the export's absolute path`},
		{func(a *NFSStoreArgs) { a.Path = "/exports/../etc" }, `nfsStore.path "/exports/../etc"`},
		{func(a *NFSStoreArgs) { a.Image = "chrislusf/seaweedfs:latest" }, "pin SeaweedFS by digest"},
		{func(a *NFSStoreArgs) { a.CredentialsSecret = "" }, "without an identity the store would accept anyone"},
		{func(a *NFSStoreArgs) { a.Bucket = "Backups" }, `nfsStore.bucket "Backups"`},
		{func(a *NFSStoreArgs) { a.Clients = []string{"Velero"} }, `nfsStore.clients[0] "Velero": a namespace name`},
		{func(a *NFSStoreArgs) { a.RunAsUser = -1 }, "nfsStore.runAsUser -1"},
	} {
		a := good
		c.mutate(&a)
		assert.ErrorContains(t, a.Validate(), c.want)
	}
}

func TestNFSStoreGraph(t *testing.T) {
	m := &pack.Recorder{}
	var url string
	var resolved sync.WaitGroup
	resolved.Add(1)
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		s, err := NewNFSStore(ctx, "nfs-store", &NFSStoreArgs{Server: "10.0.0.5", Path: "/exports/backups", Image: "chrislusf/seaweedfs" + digest,
			CredentialsSecret: "nfs-store", TLSSecret: "nfs-store-tls", Bucket: "backups"})
		if err != nil {
			return err
		}
		s.URL.ApplyT(func(u string) string { url = u; resolved.Done(); return u })
		return nil
	}, pulumi.WithMocks("kplane", "prod", m)))
	resolved.Wait()
	assert.Equal(t, "https://nfs-store.velero.svc:8333", url)
	js := func(key string) string {
		b, err := json.Marshal(m.Inputs()[key].Mappable())
		require.NoError(t, err)
		return string(b)
	}
	pv := js("kubernetes:core/v1:PersistentVolume nfs-store-pv")
	for _, want := range []string{`"nfs":{"path":"/exports/backups","server":"10.0.0.5"}`, `"persistentVolumeReclaimPolicy":"Retain"`,
		`"claimRef":{"name":"nfs-store","namespace":"velero"}`, `"mountOptions":["nfsvers=4.1","hard"]`} {
		assert.Contains(t, pv, want)
	}
	dep := js("kubernetes:apps/v1:Deployment nfs-store")
	for _, want := range []string{`"-bucket=backups"`, `"-s3.autoCreateBucket=false"`, `"-dir=/data"`, `"-s3.cert.file=/tls/tls.crt"`,
		`"secretKeyRef":{"key":"AWS_SECRET_ACCESS_KEY","name":"nfs-store"}`, `"type":"Recreate"`, `"readOnlyRootFilesystem":true`,
		`"runAsNonRoot":true`, `"scheme":"HTTPS"`, `"claimName":"nfs-store"`} {
		assert.Contains(t, dep, want)
	}
	assert.Contains(t, js("kubernetes:networking.k8s.io/v1:NetworkPolicy nfs-store-netpol"), `"ports":[{"port":8333,"protocol":"TCP"}]`)
}
