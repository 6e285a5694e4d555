// Package cli holds the conventions every kplane command keeps: -h/--help and help print the
// usage and exit 0, --version prints the version, errors exit 1, and destroying an environment
// other than dev asks first.
package cli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"golang.org/x/term"
)

// Version of kplane's commands: set at build time with
// -ldflags "-X github.com/kplane/kplane/internal/cli.Version=v1.2.3"; otherwise the module's
// version from the build information, or the source revision it was built from.
var Version string

// VersionString is the version Main prints.
func VersionString() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 && (v == "" || v == "(devel)") {
			v = "devel+" + s.Value[:12]
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// Main runs a command: name is its name, usage its synopsis (printed for -h, --help and help),
// run its work on the arguments. A flag.ErrHelp from run (a subcommand's -h) exits 0.
func Main(name, usage string, run func(args []string) error) {
	os.Exit(Run(name, usage, os.Args[1:], os.Stdout, os.Stderr, run))
}

// Run is Main without the exit: it returns the exit code.
func Run(name, usage string, args []string, stdout, stderr io.Writer, run func(args []string) error) int {
	if len(args) > 0 && slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
		fmt.Fprintln(stdout, strings.TrimSpace(usage))
		return 0
	}
	if slices.Contains(args, "--version") || slices.Contains(args, "-version") || (len(args) > 0 && args[0] == "version") {
		fmt.Fprintf(stdout, "%s %s\n", name, VersionString())
		return 0
	}
	err := run(args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// ConfirmDestroy lets a destroy of env on target go ahead: always for dev, with yes (--yes), or
// when a person at a terminal types the environment's name. Otherwise it returns the error that
// says how to confirm.
func ConfirmDestroy(command, env, target string, yes bool, in *os.File, out io.Writer) error {
	if env == "dev" || yes {
		return nil
	}
	what := fmt.Sprintf("%s destroys environment %q on %s", command, env, target)
	if !term.IsTerminal(int(in.Fd())) {
		return fmt.Errorf("%s: add --yes to confirm (no terminal to ask)", what)
	}
	fmt.Fprintf(out, "%s.\nType the environment's name (%s) to go ahead: ", what, env)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != env {
		return fmt.Errorf("%s: not confirmed; nothing destroyed", what)
	}
	return nil
}
