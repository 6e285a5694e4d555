// Command kplane-backup runs the restore drill and the checks of a restore or migration against
// a cluster's Velero and its bucket (what the drill CronJob runs, and what an operator runs):
//
//	kplane-backup seal     --backup NAME
//	kplane-backup precheck --backup NAME --namespace NS
//	kplane-backup drill    --backup NAME|latest --namespace NS [--scratch NS] [--evidence FILE] [--window D] [--record=false]
//	kplane-backup snapshot --policy NAME --namespace NS [--selector k=v,...] --class C --keep N
//
// Common flags: --kubeconfig, --velero-namespace, --bucket, --prefix (the location's),
// --s3-endpoint, --s3-ca, --region; the bucket's credentials come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. It prints JSON and exits non-zero when a drill fails or misses its
// schedule's RPO or RTO, or a pre-check finds blockers. A drill keeps its evidence in the bucket
// (under kplane-drills/<prefix>/<namespace>/) and in its ConfigMap in Velero's namespace, which
// the fleet's alerts read, whether it passed or not.
package main

import (
	// Root certificates compiled in: the image holds this binary alone (internal/images).
	_ "golang.org/x/crypto/x509roots/fallback"

	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/backup/csisnap"
	"github.com/kplane/kplane/components/backup/drill"
	"github.com/kplane/kplane/components/backup/objstore"
	"github.com/kplane/kplane/internal/cli"
)

const usage = "usage: kplane-backup seal|precheck|drill|snapshot [flags] (kplane-backup <command> -h for the flags)"

func main() {
	cli.Main("kplane-backup", usage, func(args []string) error { return run(context.Background(), args) })
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || !slices.Contains([]string{"seal", "precheck", "drill", "snapshot"}, args[0]) {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (default: in-cluster)")
	veleroNS := fs.String("velero-namespace", "velero", "Velero's namespace")
	b := objstore.Flags(fs) // the storage location's bucket and prefix
	backup := fs.String("backup", "", "backup name (drill: or latest)")
	ns := fs.String("namespace", "", "the backed-up namespace")
	scratch := fs.String("scratch", "", "drill: the scratch namespace (default <namespace>-drill)")
	evidence := fs.String("evidence", "", "drill: also write the evidence JSON here")
	window := fs.Duration("window", drill.DefaultWindow, "drill: how far back the RPO the backups' schedule achieved is measured (the drill's interval)")
	record := fs.Bool("record", true, "drill: keep the evidence in the bucket and the namespace's ConfigMap")
	policy := fs.String("policy", "", "snapshot: the policy's name (labels its snapshots)")
	selector := fs.String("selector", "", "snapshot: claims' labels (k=v,...)")
	class := fs.String("class", "", "snapshot: VolumeSnapshotClass, with deletionPolicy Delete (pruning frees the storage)")
	keep := fs.Int("keep", 7, "snapshot: ready snapshots kept per claim")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "snapshot" {
		return snapshot(ctx, *kubeconfig, csisnap.Policy{Name: *policy, Namespace: *ns, Class: *class, Keep: *keep}, *selector)
	}
	if *backup == "" {
		return errors.New("--backup: required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	store, err := objstore.New(*b)
	if err != nil {
		return err
	}
	d := &drill.Drill{Discovery: disc, Dynamic: dyn, Velero: *veleroNS, Bucket: store, Window: *window}
	if *record && args[0] == "drill" { // the evidence goes beside the location's prefix, not into it
		at := *b
		at.Prefix = drill.EvidencePrefix + b.Prefix
		if d.Evidence, err = objstore.New(at); err != nil {
			return err
		}
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	switch args[0] {
	case "seal":
		sum, err := d.Seal(ctx, *backup)
		if err != nil {
			return err
		}
		return out.Encode(map[string]string{"backup": *backup, "sha256": sum})
	case "precheck":
		if *ns == "" {
			return errors.New("--namespace: required")
		}
		blockers, err := d.Precheck(ctx, *backup, *ns)
		if err != nil {
			return err
		}
		if err := out.Encode(map[string]any{"backup": *backup, "namespace": *ns, "blockers": blockers}); err != nil {
			return err
		}
		if len(blockers) > 0 {
			return fmt.Errorf("%d blockers: resolve them before restoring", len(blockers))
		}
		return nil
	}
	if *ns == "" {
		return errors.New("--namespace: required")
	}
	return drillOnce(ctx, d, *backup, *ns, cmp.Or(*scratch, *ns+"-drill"), *evidence, *record)
}

// drillOnce drills ns from backup (or its latest), prints the evidence, writes it to file (if
// set) and keeps it (if record): a drill that finds no backup to restore is evidence too.
func drillOnce(ctx context.Context, d *drill.Drill, backup, ns, scratch, file string, record bool) error {
	var ev drill.Evidence
	var runErr error
	if backup == "latest" {
		backup, runErr = latest(ctx, d.Dynamic, d.Velero, ns)
	}
	if runErr == nil {
		ev, runErr = d.Run(ctx, backup, ns, scratch)
	} else {
		ev = drill.Evidence{Namespace: ns, Scratch: scratch, Finished: time.Now().UTC(), Problems: []string{runErr.Error()}}
	}
	raw, _ := json.MarshalIndent(ev, "", "  ")
	fmt.Println(string(raw))
	if file != "" {
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if record {
		if err := d.Keep(ctx, ev); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// snapshot runs one CSI snapshot policy and prints what it created and pruned.
func snapshot(ctx context.Context, kubeconfig string, p csisnap.Policy, selector string) error {
	if p.Name == "" || p.Namespace == "" {
		return errors.New("snapshot: --policy and --namespace are required")
	}
	set, err := labels.ConvertSelectorToLabelsMap(selector)
	if err != nil {
		return fmt.Errorf("--selector %q: %w", selector, err)
	}
	p.Selector = set
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	res, err := csisnap.Run(ctx, dyn, p, time.Now())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// latest is the newest Completed backup that includes namespace ns (or every namespace).
func latest(ctx context.Context, dyn dynamic.Interface, veleroNS, ns string) (string, error) {
	list, err := dyn.Resource(schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backups"}).Namespace(veleroNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	best, bestAt := "", ""
	for _, b := range list.Items {
		phase, _, _ := unstructured.NestedString(b.Object, "status", "phase")
		at, _, _ := unstructured.NestedString(b.Object, "status", "startTimestamp")
		included, _, _ := unstructured.NestedStringSlice(b.Object, "spec", "includedNamespaces")
		if phase == "Completed" && (len(included) == 0 || slices.Contains(included, ns) || slices.Contains(included, "*")) && strings.Compare(at, bestAt) > 0 {
			best, bestAt = b.GetName(), at
		}
	}
	if best == "" {
		return "", fmt.Errorf("no Completed backup of namespace %s in %s", ns, veleroNS)
	}
	return best, nil
}
