package automation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"gopkg.in/yaml.v3"
)

var envName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Environments lists the environment names under dir (each a folder of stack config files).
func Environments(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// LoadEnvironment reads <dir>/<env>/<stack>.yaml, a file in Pulumi's stack config format
// (`config:` with "project:key" entries), which users also pass to the official CLI with
// `pulumi up --config-file`. Structured values become JSON, as the CLI passes them.
func LoadEnvironment(dir, env, stack string) (auto.ConfigMap, error) {
	known := Environments(dir)
	if !envName.MatchString(env) {
		return nil, fmt.Errorf("environment %q: not a valid name (lowercase letters, digits, '-'); known: %s", env, strings.Join(known, ", "))
	}
	path := filepath.Join(dir, env, stack+".yaml")
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		if _, statErr := os.Stat(filepath.Join(dir, env)); statErr != nil {
			return nil, fmt.Errorf("unknown environment %q: %s has %s; create %s or pick one of those", env, dir, strings.Join(known, ", "), path)
		}
		return nil, fmt.Errorf("environment %q has no %s stack config: create %s", env, stack, path)
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	out := auto.ConfigMap{}
	for key, v := range doc.Config {
		if !strings.Contains(key, ":") {
			return nil, fmt.Errorf("%s: config key %q needs its namespace, e.g. \"kplane:%s\"", path, key, key)
		}
		switch val := v.(type) {
		case string:
			out[key] = auto.ConfigValue{Value: val}
		case map[string]any:
			if _, ok := val["secure"]; ok && len(val) == 1 {
				return nil, fmt.Errorf("%s: %s is an encrypted value; environments hold no secrets: remove it and supply %s from the machine that runs the stack (e.g. kplane --kubeconfig)", path, key, key)
			}
			b, err := json.Marshal(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %v", path, key, err)
			}
			out[key] = auto.ConfigValue{Value: string(b)}
		case []any:
			b, err := json.Marshal(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %v", path, key, err)
			}
			out[key] = auto.ConfigValue{Value: string(b)}
		default:
			out[key] = auto.ConfigValue{Value: fmt.Sprint(val)}
		}
	}
	return out, nil
}
