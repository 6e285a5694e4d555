package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	failing := func([]string) error { return errors.New("boom") }
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out bytes.Buffer
		assert.Equal(t, 0, Run("kp", "usage: kp x", args, &out, &out, failing), "%v", args)
		assert.Equal(t, "usage: kp x\n", out.String())
	}
	var out bytes.Buffer
	assert.Equal(t, 0, Run("kp", "u", []string{"up", "--version"}, &out, &out, failing))
	assert.True(t, strings.HasPrefix(out.String(), "kp "), out.String())
	out.Reset()
	assert.Equal(t, 1, Run("kp", "u", []string{"up"}, &out, &out, failing))
	assert.Equal(t, "kp: boom\n", out.String())
	assert.Equal(t, 0, Run("kp", "u", []string{"up", "-h"}, &out, &out, func(args []string) error {
		return flag.NewFlagSet("up", flag.ContinueOnError).Parse(args[1:])
	}), "a subcommand's -h")
}

func TestConfirmDestroy(t *testing.T) {
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	var out bytes.Buffer
	assert.NoError(t, ConfirmDestroy("kplane down", "dev", "https://127.0.0.1:6443", false, null, &out))
	assert.NoError(t, ConfirmDestroy("kplane down", "prod", "https://prod.example.com", true, null, &out))
	err = ConfirmDestroy("kplane down", "prod", "https://prod.example.com", false, null, &out)
	assert.EqualError(t, err, `kplane down destroys environment "prod" on https://prod.example.com: add --yes to confirm (no terminal to ask)`)
}

// TestEveryCommand: each of kplane's commands answers --help and --version with exit 0.
func TestEveryCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every command")
	}
	commands := []string{"cmd/kplane", "cmd/kplane-fleet", "cmd/kplane-catalog",
		"cmd/kplane-backup", "cmd/kplane-etcd-snapshot",
		"cmd/kplane-nodecheck", "cmd/kplane-vault",
		"cmd/kplane-realm-sync", "cmd/kplane-kubernetes"}
	bin := t.TempDir()
	build := []string{"build", "-ldflags", "-X github.com/kplane/kplane/internal/cli.Version=v9.9.9", "-o", bin + "/"}
	for _, c := range commands {
		build = append(build, "../../"+c)
	}
	out, err := exec.Command("go", build...).CombinedOutput() // one build: the links run side by side
	require.NoError(t, err, "%s", out)
	for _, c := range commands {
		name := filepath.Base(c)
		out, err := exec.Command(filepath.Join(bin, name), "--help").CombinedOutput()
		assert.NoError(t, err, "%s --help: %s", name, out)
		assert.Contains(t, strings.ToLower(string(out)), "usage", name)
		out, err = exec.Command(filepath.Join(bin, name), "--version").CombinedOutput()
		assert.NoError(t, err, "%s --version: %s", name, out)
		assert.Contains(t, string(out), "v9.9.9", name)
	}
}
