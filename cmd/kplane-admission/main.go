// Command kplane-admission is the exception-expiry CronJob's tool (package exceptions):
//
//	kplane-admission expire --targets kplane-read-only-root,kplanehostpath/kplane-host-path [--kubeconfig F]
//
// It removes the exceptions whose last day has passed from the named ValidatingAdmissionPolicies
// ("name") and Gatekeeper constraints ("resource/name") and prints a line per exception removed.
package main

import (
	// Root certificates compiled in: the image holds this binary alone (internal/images).
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/hardenedcluster/exceptions"
	"github.com/kplane/kplane/internal/cli"
)

const usage = "usage: kplane-admission expire --targets POLICY[,RESOURCE/CONSTRAINT...] [--kubeconfig F] (kplane-admission expire -h for the flags)"

func main() { cli.Main("kplane-admission", usage, run) }

func run(args []string) error {
	if len(args) == 0 || args[0] != "expire" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("expire", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (default: in-cluster)")
	targets := fs.String("targets", "", "the policies (name) and Gatekeeper constraints (resource/name) that hold exceptions")
	today := fs.String("today", "", "the date to judge by, YYYY-MM-DD (default: today, UTC)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *targets == "" {
		return errors.New("--targets: required")
	}
	day := time.Now().UTC()
	if *today != "" {
		var err error
		if day, err = time.Parse("2006-01-02", *today); err != nil {
			return fmt.Errorf("--today %q: use YYYY-MM-DD", *today)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var list []exceptions.Target
	for _, t := range strings.Split(*targets, ",") {
		list = append(list, exceptions.ParseTarget(strings.TrimSpace(t)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	removed, err := exceptions.Expire(ctx, dyn, list, day)
	for _, r := range removed {
		fmt.Println("removed", r)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%d exceptions expired\n", len(removed))
	return nil
}
