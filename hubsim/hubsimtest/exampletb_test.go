package hubsimtest_test

import (
	"fmt"
	"os"
	"testing"
)

// exampleTB stands in for a test's *testing.T in runnable examples, which
// get none: cleanups run at Close, failures panic with their message. The
// embedded nil TB provides testing.TB's unexported method; calling any
// method not defined here panics.
type exampleTB struct {
	testing.TB
	cleanups []func()
	dirs     []string
}

func (tb *exampleTB) Helper()             {}
func (tb *exampleTB) Name() string        { return "Example" }
func (tb *exampleTB) Cleanup(f func())    { tb.cleanups = append(tb.cleanups, f) }
func (tb *exampleTB) Log(...any)          {}
func (tb *exampleTB) Logf(string, ...any) {}
func (tb *exampleTB) Fatal(args ...any)   { panic(fmt.Sprint(args...)) }
func (tb *exampleTB) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
func (tb *exampleTB) Errorf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func (tb *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "hubsimtest-example-")
	if err != nil {
		panic(err)
	}
	tb.dirs = append(tb.dirs, d)
	return d
}

// Close runs the cleanups, last registered first, and removes the
// temporary directories.
func (tb *exampleTB) Close() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	for _, d := range tb.dirs {
		_ = os.RemoveAll(d)
	}
}
