package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// commands are the Go commands of the module the tests run, each built once for the whole run
// (a link of a command that imports the Pulumi SDK takes seconds of CPU) into a folder removed
// when the run ends.
var commands struct {
	sync.Mutex
	dir   string
	built map[string]*command
}

type command struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if commands.dir != "" {
		_ = os.RemoveAll(commands.dir)
	}
	os.Exit(code)
}

// buildCommand returns the path of the Go command pkg of the module, built on first use: tests
// that ask for it meanwhile wait for that build, and none may change the file.
func buildCommand(t *testing.T, pkg string) string {
	t.Helper()
	commands.Lock()
	if commands.built == nil {
		dir, err := os.MkdirTemp("", "kplane-it-commands-")
		if err != nil {
			commands.Unlock()
			require.NoError(t, err)
		}
		commands.dir, commands.built = dir, map[string]*command{}
	}
	c := commands.built[pkg]
	if c == nil {
		c = &command{}
		commands.built[pkg] = c
	}
	dir := commands.dir
	commands.Unlock()
	c.once.Do(func() {
		// Each alone in a folder, as when every test built its own.
		c.path = filepath.Join(dir, strings.ReplaceAll(pkg, "/", "_"), filepath.Base(pkg))
		c.out, c.err = exec.Command("go", "build", "-o", c.path, pkg).CombinedOutput()
	})
	require.NoError(t, c.err, "go build %s: %s", pkg, c.out)
	return c.path
}
