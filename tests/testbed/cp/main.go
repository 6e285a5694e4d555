// Command cp copies a folder's contents into another, as the upstream velero-plugin-for-aws
// image's entrypoint does with busybox (cp -r /plugins/. /target): the plugin image of the
// real-pod test bed, built here, carries this instead. Only "cp -r SRC/. DST" is supported.
package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) != 4 || os.Args[1] != "-r" || !strings.HasSuffix(os.Args[2], "/.") {
		fmt.Fprintln(os.Stderr, "usage: cp -r SRC/. DST")
		os.Exit(2)
	}
	if err := copyTree(strings.TrimSuffix(os.Args[2], "/."), os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "cp:", err)
		os.Exit(1)
	}
}

// copyTree copies src's files and folders into dst, keeping their permission bits.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: only regular files are copied", p)
		}
		return copyFile(p, target, info.Mode().Perm())
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
