package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/inventory"
	"github.com/kplane/kplane/tests/testbed"
)

// BenchmarkVeleroNamespace: the real Velero server backs up a namespace of KPLANE_BENCH_OBJECTS
// (default 10,000) ConfigMaps to an S3-compatible store on loopback and restores it into a
// mapped namespace; then kplane's inventory check of the restore.
func BenchmarkVeleroNamespace(b *testing.B) {
	ctx := context.Background()
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("KPLANE_BENCH_OBJECTS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	c, err := testbed.Start(ctx, "velero-bench", filepath.Join(dir, "cluster"), testbed.Options{NoNodes: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	v, err := testbed.StartVelero(ctx, c, filepath.Join(dir, "velero"))
	if err != nil {
		b.Fatal(err)
	}
	defer v.Stop()
	s3URL := testbed.S3(b, "backups")
	cs, err := c.Clientset()
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := c.Dynamic()
	if err != nil {
		b.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	_, err = cs.CoreV1().Secrets("velero").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cloud"},
		StringData: map[string]string{"cloud": "[default]\naws_access_key_id=bench\naws_secret_access_key=bench-secret\n"}}, metav1.CreateOptions{})
	must(err)
	velero := func(res string) dynamic.ResourceInterface {
		return dyn.Resource(schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: res}).Namespace("velero")
	}
	obj := func(kind, name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "velero.io/v1", "kind": kind, "metadata": map[string]any{"name": name}, "spec": spec}}
	}
	_, err = velero("backupstoragelocations").Create(ctx, obj("BackupStorageLocation", "default", map[string]any{"provider": "aws", "default": true,
		"objectStorage": map[string]any{"bucket": "backups", "prefix": "velero"}, "credential": map[string]any{"name": "cloud", "key": "cloud"},
		"config": map[string]any{"region": "us-east-1", "s3ForcePathStyle": "true", "s3Url": s3URL}}), metav1.CreateOptions{})
	must(err)

	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulk"}}, metav1.CreateOptions{})
	must(err)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := cs.CoreV1().ConfigMaps("bulk").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("item-%05d", i)},
					Data: map[string]string{"value": strconv.Itoa(i * 7919)}}, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	must(<-errs)
	report(b, time.Since(start).Seconds(), "s/fill", fmt.Sprintf("create %d ConfigMaps", n))

	wait := func(res, name string) {
		for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			o, err := velero(res).Get(ctx, name, metav1.GetOptions{})
			must(err)
			phase, _, _ := unstructured.NestedString(o.Object, "status", "phase")
			switch phase {
			case "Completed":
				return
			case "PartiallyFailed", "Failed", "FailedValidation":
				b.Fatalf("%s %s: %s %v", res, name, phase, o.Object["status"])
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s %s: not finished", res, name)
			}
		}
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		o, err := velero("backupstoragelocations").Get(ctx, "default", metav1.GetOptions{})
		must(err)
		if phase, _, _ := unstructured.NestedString(o.Object, "status", "phase"); phase == "Available" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("storage location not available")
		}
	}
	start = time.Now()
	_, err = velero("backups").Create(ctx, obj("Backup", "bulk", map[string]any{"includedNamespaces": []any{"bulk"}, "ttl": "24h"}), metav1.CreateOptions{})
	must(err)
	wait("backups", "bulk")
	took := time.Since(start).Seconds()
	report(b, took, "s/backup", fmt.Sprintf("Velero backup of the namespace (%d objects)", n))
	report(b, float64(n)/took, "objects/s-backup", "objects backed up per second")
	total := took
	start = time.Now()
	_, err = velero("restores").Create(ctx, obj("Restore", "bulk", map[string]any{"backupName": "bulk", "namespaceMapping": map[string]any{"bulk": "bulk-restored"}}), metav1.CreateOptions{})
	must(err)
	wait("restores", "bulk")
	took = time.Since(start).Seconds()
	apiProfile(b, c.Dir, start, time.Now())
	report(b, took, "s/restore", fmt.Sprintf("Velero restore into a mapped namespace (client rate %d QPS, burst %d: kplane's defaults)", backup.DefaultClientQPS, backup.DefaultClientBurst))
	report(b, float64(n)/took, "objects/s-restore", "objects restored per second")
	total += took
	start = time.Now()
	want, err := inventory.Take(ctx, cs.Discovery(), dyn, "bulk")
	must(err)
	got, err := inventory.Take(ctx, cs.Discovery(), dyn, "bulk-restored")
	must(err)
	if d := inventory.Diff(want, got); len(d) > 0 || len(want) < n {
		b.Fatalf("restore differs (%d objects): %v", len(want), d[:min(len(d), 5)])
	}
	took = time.Since(start).Seconds()
	report(b, took, "s/verify", "inventory of both namespaces and their comparison")
	report(b, total+took, "s/backup-restore-verify", "backup, restore and inventory check together (goal < 60 s)")
}
