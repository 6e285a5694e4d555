package automation

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadEnvironment(t *testing.T) {
	cfg, err := LoadEnvironment("../../environments", "dev", "platform")
	require.NoError(t, err)
	assert.Equal(t, "dev", cfg["kplane:environment"].Value)
	assert.Contains(t, cfg["kplane:security"].Value, `"podSecurityVersion":"v1.37"`, "structured values become JSON")
}

func TestLoadEnvironmentErrors(t *testing.T) {
	dir := t.TempDir()
	for _, env := range []string{"dev", "prod"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, env), 0o755))
	}
	write := func(env, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, env, "platform.yaml"), []byte(body), 0o644))
	}
	write("dev", "config:\n  environment: dev\n")
	write("prod", "config:\n  kplane:token:\n    secure: AAABAx==\n")

	for name, tc := range map[string]struct{ env, want string }{
		"unknown":      {"qa", `unknown environment "qa": ` + dir + ` has dev, prod; create ` + filepath.Join(dir, "qa", "platform.yaml") + ` or pick one of those`},
		"invalid name": {"../etc", `environment "../etc": not a valid name`},
		"no namespace": {"dev", `config key "environment" needs its namespace, e.g. "kplane:environment"`},
		"secret":       {"prod", "kplane:token is an encrypted value; environments hold no secrets"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadEnvironment(dir, tc.env, "platform")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := LoadEnvironment(dir, "dev", "fleet")
	assert.ErrorContains(t, err, `environment "dev" has no fleet stack config`)
}
