package architecture

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	fence      = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	inlineCode = regexp.MustCompile("`([^`\n]+)`")
	// commands: what an operator types, in code spans; their prose around them is translated.
	command = regexp.MustCompile(`^(kplane[a-z-]*|velero|kubectl|aws|etcdctl|crictl|export|make|pulumi) `)
)

// commands are a runbook's code blocks (line by line) and the inline commands of its prose.
func commands(t *testing.T, path string) []string {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, m := range fence.FindAllStringSubmatch(string(raw), -1) {
		for _, line := range strings.Split(m[1], "\n") {
			if line = strings.TrimSpace(line); line != "" {
				out = append(out, line)
			}
		}
	}
	for _, m := range inlineCode.FindAllStringSubmatch(fence.ReplaceAllString(string(raw), ""), -1) {
		if command.MatchString(m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestRunbooksHaveKoreanTwins: every English runbook has a Korean twin under docs/ko/runbooks
// with the same commands (the operator at 3 a.m. copies them from whichever they read), and
// each links the other.
func TestRunbooksHaveKoreanTwins(t *testing.T) {
	dir := filepath.Join(root(t), "docs")
	english, err := filepath.Glob(filepath.Join(dir, "runbooks", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, english)
	for _, en := range english {
		name := filepath.Base(en)
		ko := filepath.Join(dir, "ko", "runbooks", name)
		if !assert.FileExists(t, ko, "docs/runbooks/%s has no Korean twin", name) {
			continue
		}
		enCmds := commands(t, en)
		assert.NotEmpty(t, enCmds, name)
		assert.Equal(t, enCmds, commands(t, ko), "docs/ko/runbooks/%s carries the same commands as docs/runbooks/%s", name, name)
		enText, _ := os.ReadFile(en)
		koText, _ := os.ReadFile(ko)
		assert.Contains(t, string(enText), "(../ko/runbooks/"+name+")", "the English runbook links its twin")
		assert.Contains(t, string(koText), "(../../runbooks/"+name+")", "the Korean runbook links its twin")
		assert.Regexp(t, `[가-힣]`, string(koText), "the twin is in Korean")
	}
	koreanOnly, _ := filepath.Glob(filepath.Join(dir, "ko", "runbooks", "*.md"))
	assert.Len(t, koreanOnly, len(english), "a Korean runbook without an English one")
	assert.FileExists(t, filepath.Join(dir, "ko", "README.md"), "the Korean quick start")
}
