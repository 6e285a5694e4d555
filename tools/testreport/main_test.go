package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const stream = `{"Action":"start","Package":"a"}
{"Action":"run","Package":"a","Test":"TestFast"}
{"Action":"output","Package":"a","Test":"TestFast","Output":"=== RUN   TestFast\n"}
{"Action":"output","Package":"a","Test":"TestFast","Output":"    fast_test.go:9: quiet on success\n"}
{"Action":"pass","Package":"a","Test":"TestFast","Elapsed":0.2}
{"Action":"output","Package":"a","Test":"TestSlow","Output":"    slow_test.go:12: boom\n"}
{"Action":"output","Package":"a","Test":"TestSlow/sub","Output":"--- FAIL: TestSlow/sub\n"}
{"Action":"fail","Package":"a","Test":"TestSlow/sub","Elapsed":40}
{"Action":"fail","Package":"a","Test":"TestSlow","Elapsed":41.5}
{"Action":"skip","Package":"a","Test":"TestSkipped","Elapsed":0}
{"Action":"output","Package":"a","Output":"FAIL\ta\t41.9s\n"}
{"Action":"fail","Package":"a","Elapsed":41.9}
{"Action":"output","Package":"b","Output":"ok  \tb\t3.0s\n"}
{"Action":"pass","Package":"b","Elapsed":3}
`

// TestReport: passing tests are quiet, a failed test's output is printed, the slowest tests
// (top-level only) and packages come last, and a failure fails the report.
func TestReport(t *testing.T) {
	var out strings.Builder
	failed, err := report(strings.NewReader(stream), &out, 10)
	require.NoError(t, err)
	assert.True(t, failed)
	got := out.String()
	assert.NotContains(t, got, "quiet on success")
	assert.Contains(t, got, "slow_test.go:12: boom\n")
	assert.Contains(t, got, "FAIL\ta\t41.9s\nok  \tb\t3.0s\n")
	assert.Contains(t, got, "the 2 slowest tests:\n    41.5 s  TestSlow (a)\n     0.2 s  TestFast (a)\n")
	assert.Contains(t, got, "the 2 slowest packages:\n    41.9 s  a\n     3.0 s  b\n")

	failed, err = report(strings.NewReader(`{"Action":"pass","Package":"b","Elapsed":3}`+"\n"), &out, 10)
	require.NoError(t, err)
	assert.False(t, failed)
	_, err = report(strings.NewReader("# a build error\n"), &out, 10)
	assert.ErrorContains(t, err, "go test reported no package")
}
