// Command platform is the platform stack as an ordinary Pulumi Go program: with the official
// CLI, `pulumi up --config-file environments/dev/platform.yaml` runs it (Pulumi.yaml points here).
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/stacks/platform"
)

func main() { pulumi.Run(platform.Program) }
