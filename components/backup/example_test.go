package backup_test

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/internal/mockrun"
)

// Velero with an S3-compatible bucket and a nightly backup of every namespace kept 30 days.
func ExampleNewVelero() {
	counts, err := mockrun.Run(func(ctx *pulumi.Context) error {
		_, err := backup.NewVelero(ctx, "backup", &backup.VeleroArgs{
			Install:   &backup.VeleroInstall{Image: "registry.example.com/velero/velero@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", PluginImage: "registry.example.com/velero/velero-plugin-for-aws@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
			Storage:   backup.Storage{Bucket: "backups", URL: "https://s3.example.com", CredentialsSecret: "cloud"},
			Schedules: []backup.Schedule{{Name: "nightly", Cron: "0 1 * * *", Namespaces: []string{"*"}, TTL: "720h"}},
		})
		return err
	})
	fmt.Println(err, counts["kubernetes:velero.io/v1:Schedule"])
	// Output: <nil> 1
}
