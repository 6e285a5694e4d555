package testbed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PinnedVersion is the version tools/versions.sh pins under key (e.g. ISTIO_VERSION).
func PinnedVersion(key string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	f, err := os.Open(filepath.Join(root, "tools", "versions.sh"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return strings.Fields(v)[0], nil
		}
	}
	return "", fmt.Errorf("%s not in tools/versions.sh", key)
}

// ModuleDir is the folder of module@version in the Go module cache (downloaded if missing):
// upstream releases' CRDs and charts come from there, offline.
func ModuleDir(module string) (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", module, err)
	}
	var info struct{ Dir string }
	return info.Dir, json.Unmarshal(out, &info)
}
