// Command cluster manages named local test-bed clusters under .state/clusters (what
// `make cluster`, `make cluster-stop` and `make cluster-delete` call):
//
//	cluster start  NAME [--nodes N [--real]] [--port P]
//	cluster stop   NAME
//	cluster delete NAME
//	cluster status
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kplane/kplane/tests/testbed"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: cluster <start|stop|delete|status> [NAME] [--nodes N [--real]] [--port P]")
	}
	verb, rest := args[0], args[1:]
	name := "dev"
	if len(rest) > 0 && rest[0][0] != '-' {
		name, rest = rest[0], rest[1:]
	}
	fs := flag.NewFlagSet("cluster "+verb, flag.ContinueOnError)
	nodes := fs.Int("nodes", 2, "nodes (KWOK's, or with --real real ones)")
	realNodes := fs.Bool("real", false, "nodes that run real pods: containerd, runc, CNI, kubelet, kube-proxy (root; tools/build.sh node)")
	port := fs.Int("port", 0, "API server port (default: a free one, kept across restarts)")
	root := fs.String("state", ".state/clusters", "folder of the clusters' data")
	authn := fs.String("authentication-config", "", "AuthenticationConfiguration file for the API server (make identity writes one)")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if *authn != "" {
		abs, err := filepath.Abs(*authn)
		if err != nil {
			return err
		}
		*authn = abs
	}
	if verb == "status" {
		entries, _ := os.ReadDir(*root)
		for _, e := range entries {
			c, err := testbed.New(e.Name(), filepath.Join(*root, e.Name()), testbed.Options{})
			if err != nil {
				return err
			}
			st := "stopped"
			if c.Running() {
				st = fmt.Sprintf("running  https://127.0.0.1:%d", c.Port)
			}
			fmt.Printf("%-12s %s\n", e.Name(), st)
		}
		return nil
	}
	opts := testbed.Options{Nodes: *nodes, NoNodes: *nodes == 0, Port: *port, Detached: true, Durable: true, AuthenticationConfig: *authn}
	kind := "KWOK"
	if *realNodes {
		opts.Nodes, opts.NoNodes, opts.RealNodes, kind = 0, true, *nodes, "real"
	}
	c, err := testbed.New(name, filepath.Join(*root, name), opts)
	if err != nil {
		return err
	}
	switch verb {
	case "start":
		if c.Running() {
			fmt.Printf("cluster %s already running at https://127.0.0.1:%d\n  kubeconfig: %s\n", name, c.Port, c.Kubeconfig)
			return nil
		}
		if err := c.Start(context.Background()); err != nil {
			return err
		}
		fmt.Printf("cluster %s ready in %.1fs at %s (%d %s nodes)\n  kubeconfig: %s\n", name, c.ReadyIn.Seconds(), c.Server, *nodes, kind, c.Kubeconfig)
	case "stop":
		return c.Stop()
	case "delete":
		return c.Delete()
	default:
		return fmt.Errorf("unknown command %q: use start, stop, delete or status", verb)
	}
	return nil
}
