package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/hardenedcluster/vaultbootstrap"
	"github.com/kplane/kplane/tests/testbed"
)

// TestVaultBootstrapAndRotation: the component's Vault route end to end, with the Job's own
// commands (kplane-vault bootstrap and rotate, run here as processes since no pod runs) and the
// official Vault API client, against a real Vault-API server (OpenBao, dev mode) that checks
// every identity with the real API server's TokenReview.
// Shown: the bootstrap configures the auth method, KV v2, policies and roles from the plan the
// component stored in the cluster, and a second run changes nothing; a service reads its own
// path and not its neighbour's, and cannot log in as another role; the rotation CronJob's command
// writes a new version, keeps the other keys, and cannot read the values it rotates.
func TestVaultBootstrapAndRotation(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0] // a node: up waits for the bootstrap Job to complete
	ctx := context.Background()
	eso := "github.com/external-secrets/external-secrets@" + pinned(t, "EXTERNAL_SECRETS_VERSION")
	upstreamCRD(t, c, eso, "config/crds/bases/external-secrets.io_secretstores.yaml")
	upstreamCRD(t, c, eso, "config/crds/bases/external-secrets.io_externalsecrets.yaml")
	v := testbed.StartOpenBao(t)
	clusterCA, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	require.NoError(t, err)
	apiURL := fmt.Sprintf("https://127.0.0.1:%d", c.Port)

	s := hardenedStack(t, c, "vault", &hardenedcluster.Args{
		Teams: []hardenedcluster.Team{{Name: "pay", Namespaces: []string{"vlt-payments"}}},
		Services: []hardenedcluster.Service{
			{Name: "ledger", Namespace: "vlt-payments", Secrets: []hardenedcluster.ServiceSecret{
				{Name: "db", Rotate: &hardenedcluster.Rotation{Keys: []string{"password"}, Schedule: "0 4 1 * *"}}, {Name: "api-key"}}},
			{Name: "reporter", Namespace: "vlt-payments", Secrets: []hardenedcluster.ServiceSecret{{Name: "smtp"}}},
		},
		Secrets: hardenedcluster.SecretsArgs{VaultAddress: v.URL, VaultCABundle: string(v.CA), Operator: hardenedcluster.OperatorArgs{External: true}, Bootstrap: &hardenedcluster.VaultBootstrapArgs{
			Image: "registry.example.com/kplane-vault" + rules.Digest, TokenSecret: "vault-admin", KubernetesHost: apiURL, KubernetesCACert: string(clusterCA),
		}},
	}, nil)
	_, err = s.Up(ctx)
	require.NoError(t, err)

	cs, err := c.Clientset()
	require.NoError(t, err)
	ns := hardenedcluster.SecretsNamespace

	// What the bootstrap Job mounts: the plan (ConfigMap) and the reviewer's token (filled in by
	// the API server's token controller).
	job := t.TempDir()
	plan, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kplane-vault-plan", k8smeta.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(job, "plan.json"), []byte(plan.Data["plan.json"]), 0o600))
	require.Eventually(t, func() bool {
		sec, err := cs.CoreV1().Secrets(ns).Get(ctx, "kplane-vault-reviewer-token", k8smeta.GetOptions{})
		return err == nil && len(sec.Data["token"]) > 0 && os.WriteFile(filepath.Join(job, "reviewer"), sec.Data["token"], 0o600) == nil
	}, 30*time.Second, 200*time.Millisecond, "the reviewer's token is issued")
	require.NoError(t, os.WriteFile(filepath.Join(job, "vault-ca.crt"), v.CA, 0o600))

	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-vault")
	kplaneVault := func(token string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.URL, "VAULT_CACERT="+filepath.Join(job, "vault-ca.crt"), "VAULT_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	boot := func() string {
		out, err := kplaneVault(v.RootToken, "bootstrap", "--plan="+filepath.Join(job, "plan.json"), "--reviewer-token-file="+filepath.Join(job, "reviewer"))
		require.NoError(t, err, out)
		return out
	}
	first := boot()
	assert.Contains(t, first, "enabled auth kubernetes")
	assert.Contains(t, first, "role vlt-payments-ledger")
	assert.Contains(t, first, "policy kplane-secret-rotator")
	assert.Contains(t, boot(), "vault bootstrap: 0 changes", "a second run changes nothing")

	admin := vaultClient(t, v, v.RootToken)
	_, err = admin.KVv2("secret").Put(ctx, "vlt-payments/ledger/db", map[string]any{"username": "ledger", "password": "initial"})
	require.NoError(t, err)
	_, err = admin.KVv2("secret").Put(ctx, "vlt-payments/reporter/smtp", map[string]any{"password": "mail"})
	require.NoError(t, err)

	// A service logs in with its own ServiceAccount token, as External Secrets does for it.
	saToken := func(ns, sa string) string {
		tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{}, k8smeta.CreateOptions{})
		require.NoError(t, err)
		return tok.Status.Token
	}
	login := func(role, jwt string) (*vault.Client, error) {
		cl := vaultClient(t, v, "")
		sec, err := cl.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": role, "jwt": jwt})
		if err != nil {
			return nil, err
		}
		cl.SetToken(sec.Auth.ClientToken)
		return cl, nil
	}
	ledgerJWT := saToken("vlt-payments", "ledger")
	ledger, err := login("vlt-payments-ledger", ledgerJWT)
	require.NoError(t, err)
	own, err := ledger.KVv2("secret").Get(ctx, "vlt-payments/ledger/db")
	require.NoError(t, err)
	assert.Equal(t, "initial", own.Data["password"])
	_, err = ledger.KVv2("secret").Get(ctx, "vlt-payments/reporter/smtp")
	assert.ErrorContains(t, err, "permission denied", "a service reads only its own path")
	_, err = login("vlt-payments-reporter", ledgerJWT)
	assert.ErrorContains(t, err, "service account name not authorized", "a service cannot log in as another role")

	// Rotation, as the CronJob runs it: the rotator's own token, the rotate command.
	tokenFile := filepath.Join(job, "rotator-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(saToken(ns, "kplane-secret-rotator")), 0o600))
	out2, err := kplaneVault("", "rotate", "--path=vlt-payments/ledger/db", "--keys=password", "--token-file="+tokenFile)
	require.NoError(t, err, out2)
	assert.Contains(t, out2, "now version 2", "the evidence line of the rotation")
	rotated, err := ledger.KVv2("secret").Get(ctx, "vlt-payments/ledger/db")
	require.NoError(t, err)
	assert.Equal(t, 2, rotated.VersionMetadata.Version)
	assert.Equal(t, "ledger", rotated.Data["username"], "other keys are kept")
	assert.NotEqual(t, "initial", rotated.Data["password"])
	assert.Len(t, rotated.Data["password"], 43, "32 random bytes, base64url")

	rotator, err := login("kplane-secret-rotator", saToken(ns, "kplane-secret-rotator"))
	require.NoError(t, err)
	_, err = rotator.KVv2("secret").Get(ctx, "vlt-payments/ledger/db")
	assert.ErrorContains(t, err, "permission denied", "the rotator cannot read what it rotates")
	_, err = vaultbootstrap.Rotate(ctx, rotator, "secret", "vlt-payments/ledger/api-key", []string{"key"}, 32)
	assert.ErrorContains(t, err, "permission denied", "nor rotate secrets that are not declared rotated")
	// Each login is the ServiceAccount the API server vouched for.
	for who, cl := range map[string]*vault.Client{"kplane-secrets/kplane-secret-rotator": rotator, "vlt-payments/ledger": ledger} {
		self, err := cl.Auth().Token().LookupSelfWithContext(ctx)
		require.NoError(t, err)
		meta, _ := self.Data["meta"].(map[string]any)
		assert.Equal(t, who, fmt.Sprint(meta["service_account_namespace"], "/", meta["service_account_name"]))
	}

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}

func vaultClient(t *testing.T, v *testbed.OpenBao, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = v.URL
	require.NoError(t, cfg.ConfigureTLS(&vault.TLSConfig{CACertBytes: v.CA}))
	cl, err := vault.NewClient(cfg)
	require.NoError(t, err)
	cl.SetToken(token)
	return cl
}
