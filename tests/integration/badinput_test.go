package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/tests/testbed"
)

func TestPortInUse(t *testing.T) {
	integration(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = testbed.Start(context.Background(), "busy", t.TempDir(), testbed.Options{Port: port, NoNodes: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("--port %d is in use on 127.0.0.1: stop what listens there or choose another port", port))
}

func TestWrongPassphrase(t *testing.T) {
	integrationAlone(t)
	state := t.TempDir()
	program := func(ctx *pulumi.Context) error {
		ctx.Export("token", config.RequireSecret(ctx, "kplane-it:token"))
		return nil
	}
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "first-passphrase")
	s := openStack(t, "secrets", program, auto.ConfigMap{"kplane-it:token": {Value: "s3cr3t-value", Secret: true}}, state)
	_, err := s.Up(context.Background())
	require.NoError(t, err)

	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "another-passphrase")
	s = openStack(t, "secrets", program, nil, state)
	_, err = s.Preview(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set it to the passphrase the stack was created with")
	assert.NotContains(t, err.Error(), "s3cr3t-value", "a secret must never appear in an error")

	// The right passphrase still opens it, and the secret stays a secret in the outputs.
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "first-passphrase")
	s = openStack(t, "secrets", program, nil, state)
	up, err := s.Up(context.Background())
	require.NoError(t, err)
	assert.True(t, up.Outputs["token"].Secret, "a secret config value must stay a secret output")
}

// TestToolCacheRebuilds: a missing or corrupt cached binary is rebuilt, never used.
func TestToolCacheRebuilds(t *testing.T) {
	integration(t)
	cache := t.TempDir()
	bin := filepath.Join(cache, "kwok-v0.8.0", "bin", "kwok")
	build := func() string {
		cmd := exec.Command("bash", "../../tools/build.sh", "kwok")
		cmd.Env = append(os.Environ(), "KPLANE_CACHE="+cache)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.NoError(t, exec.Command(bin, "--version").Run(), "the rebuilt binary must run")
		return string(out)
	}
	assert.Contains(t, build(), "building kwok", "missing binary is built")
	assert.Contains(t, build(), "kwok v0.8.0 cached", "a good binary is reused")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\nexit 1\n"), 0o755))
	assert.Contains(t, build(), "building kwok", "corrupt binary is rebuilt")
}

// TestConfigFollowsEnvironment: a key removed from an environment is removed from the stack,
// so a deleted setting never lingers in a deployed stack.
func TestConfigFollowsEnvironment(t *testing.T) {
	integrationAlone(t)
	state := t.TempDir()
	// An exported backend (as `make env` prints) must not capture a stack opened elsewhere.
	elsewhere := t.TempDir()
	t.Setenv("PULUMI_BACKEND_URL", "file://"+elsewhere)
	program := func(ctx *pulumi.Context) error { return nil }
	openStack(t, "cfg", program, auto.ConfigMap{"kplane-it:a": {Value: "1"}, "kplane-it:b": {Value: "2"}}, state)
	s := openStack(t, "cfg", program, auto.ConfigMap{"kplane-it:a": {Value: "3"}}, state)
	cfg, err := s.GetAllConfig(context.Background())
	require.NoError(t, err)
	assert.Equal(t, auto.ConfigMap{"kplane-it:a": {Value: "3"}}, cfg)
	_, err = os.Stat(filepath.Join(state, "workspaces", "kplane-it-cfg"))
	assert.NoError(t, err, "the stack's workspace is kept under the state folder")
	_, err = os.Stat(filepath.Join(state, "pulumi", ".pulumi", "stacks", "kplane-it"))
	assert.NoError(t, err, "the stack lives in the runner's backend")
	_, err = os.Stat(filepath.Join(elsewhere, ".pulumi"))
	assert.True(t, os.IsNotExist(err), "nothing may land in the exported backend")
}
