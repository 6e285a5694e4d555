// Command testreport reads `go test -json` on stdin and prints what plain `go test` would (each
// package's result line, the output of failed tests), then the ten slowest tests and packages.
// It exits 1 when a test or package failed, or when go test printed no result at all.
//
//	go test -json ./... | go run ./tools/testreport
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type timing struct {
	name    string
	seconds float64
}

func main() {
	failed, err := report(os.Stdin, os.Stdout, 10)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// report copies the results of the events in r to w, then the slowest n tests and packages;
// failed: a test or package failed, or no package reported.
func report(r io.Reader, w io.Writer, n int) (failed bool, err error) {
	in := bufio.NewReader(r)
	buffered := map[string][]string{} // package/test -> its output until it ends
	var tests, packages []timing
	results := 0
	for {
		line, rerr := in.ReadBytes('\n')
		if len(line) > 0 {
			var e event
			if json.Unmarshal(line, &e) != nil { // not an event: go test's own message
				fmt.Fprint(w, string(line))
			} else {
				key := e.Package + "/" + e.Test
				switch {
				case e.Action == "output" && e.Test != "":
					buffered[key] = append(buffered[key], e.Output)
				case e.Action == "output" || e.Action == "build-output":
					if !strings.HasPrefix(e.Output, "PASS") && !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "testing: warning: no tests") {
						fmt.Fprint(w, e.Output)
					}
				case (e.Action == "pass" || e.Action == "fail") && e.Test != "":
					if e.Action == "fail" {
						fmt.Fprint(w, strings.Join(buffered[key], ""))
					}
					delete(buffered, key)
					if !strings.Contains(e.Test, "/") {
						tests = append(tests, timing{e.Test + " (" + e.Package + ")", e.Elapsed})
					}
				case e.Action == "skip" && e.Test != "":
					delete(buffered, key)
				case e.Action == "pass" || e.Action == "fail" || e.Action == "skip":
					results++
					packages = append(packages, timing{e.Package, e.Elapsed})
				}
				failed = failed || e.Action == "fail"
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return true, rerr
		}
	}
	slowest(w, "tests", tests, n)
	slowest(w, "packages", packages, n)
	if results == 0 {
		return true, fmt.Errorf("go test reported no package")
	}
	return failed, nil
}

func slowest(w io.Writer, what string, ts []timing, n int) {
	slices.SortStableFunc(ts, func(a, b timing) int { return cmp.Compare(b.seconds, a.seconds) })
	fmt.Fprintf(w, "\nthe %d slowest %s:\n", min(n, len(ts)), what)
	for _, t := range ts[:min(n, len(ts))] {
		fmt.Fprintf(w, "%8.1f s  %s\n", t.seconds, t.name)
	}
}
