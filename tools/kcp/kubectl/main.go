// Command kubectl is the upstream kubectl, built from the same Kubernetes release as kcp so the
// test bed's clusters can be inspected by hand (`eval "$(make -s env)"; kubectl get ns`).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() { os.Exit(cli.Run(cmd.NewDefaultKubectlCommand())) }
