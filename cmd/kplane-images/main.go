// Command kplane-images builds kplane's own container images (internal/images) without a Docker
// engine, writes them to an OCI layout and prints each image's digest:
//
//	kplane-images [--out .state/images] [--write-defaults components/images/digests.go]
//
// Push them to your registry from the layout, e.g. with skopeo:
//
//	skopeo copy oci:.state/images:kplane-catalog docker://registry.example.com/kplane/kplane-catalog
//
// and set kplane:images to that registry (docs/images.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kplane/kplane/components/images"
	"github.com/kplane/kplane/internal/cli"
	build "github.com/kplane/kplane/internal/images"
)

const usage = "usage: kplane-images [--out DIR] [--write-defaults FILE] (run from the repository's root)"

func main() {
	cli.Main("kplane-images", usage, func(args []string) error {
		fs := flag.NewFlagSet("kplane-images", flag.ContinueOnError)
		out := fs.String("out", ".state/images", "OCI layout to write")
		defaults := fs.String("write-defaults", "", "also write the digests as the components' defaults into this Go file")
		if err := fs.Parse(args); err != nil {
			return err
		}
		built := map[string]v1.Image{}
		for _, img := range build.All {
			image, err := build.Build(context.Background(), ".", img)
			if err != nil {
				return err
			}
			built[img.Name] = image
		}
		digests, err := build.WriteLayout(*out, built)
		if err != nil {
			return err
		}
		for _, img := range build.All {
			mark := ""
			if images.Digests[img.Name] != digests[img.Name] {
				mark = "  (differs from components/images: make images-defaults)"
			}
			fmt.Printf("%-22s %s%s\n", img.Name, digests[img.Name], mark)
		}
		fmt.Printf("OCI layout: %s\n", *out)
		if *defaults != "" {
			return os.WriteFile(*defaults, images.Source(digests), 0o644)
		}
		return nil
	})
}
