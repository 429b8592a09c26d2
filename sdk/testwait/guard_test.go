package testwait

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The module's rule is that tests wait through this package. This guard
// keeps hand-written polling loops from coming back: it parses every test
// file of the module (and every file of its test-helper packages, whose
// directory names end in "test", such as hubsim/hubsimtest) and fails
// naming file:line for each loop that
//
//   - sleeps (time.Sleep, or an empty "case <-time.After(d):" or
//     "case <-ticker.C:" in a select) and has a deadline: it compares
//     time.Now() with a time (time.Now().After(d), d.Before(time.Now()),
//     time.Since(s) > d, time.Until(d) <= 0, ...) or fails the test in a
//     select case on a timer or a context's Done(): a polling loop with its
//     own deadline; or
//   - fails the test when time.Now() passes a deadline
//     ("if time.Now().After(d) { t.Fatal(...) }"), sleeping or not; or
//   - has a condition and a body that is nothing but time.Sleep: an
//     unbounded poll, "for !ready() { time.Sleep(...) }".
//
// A sleep that paces on purpose (an idle connection, a benchmark's
// sampling) does neither, so it is not flagged.

// pollingLoop is one loop the guard rejects.
type pollingLoop struct {
	pos    token.Position
	reason string
}

// pollingLoops returns the hand-written polling loops in f.
func pollingLoops(fset *token.FileSet, f *ast.File) []pollingLoop {
	timeName := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" || timeName == "_" || timeName == "." {
		return nil
	}
	// isTimeCall reports whether e is a call of the time package's
	// function named one of names.
	isTimeCall := func(e ast.Expr, names ...string) bool {
		call, ok := ast.Unparen(e).(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok || pkg.Name != timeName || pkg.Obj != nil { // Obj != nil: a local variable, not the package
			return false
		}
		for _, n := range names {
			if sel.Sel.Name == n {
				return true
			}
		}
		return false
	}
	// comparesNow reports whether n is a comparison of the current time
	// with another time.
	comparesNow := func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr: // time.Now().After(d), d.Before(time.Now()), ...
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return false
			}
			switch sel.Sel.Name {
			case "After", "Before", "Compare", "Equal":
			default:
				return false
			}
			if isTimeCall(sel.X, "Now") {
				return true
			}
			for _, a := range n.Args {
				if isTimeCall(a, "Now") {
					return true
				}
			}
		case *ast.BinaryExpr: // time.Since(s) > d, time.Until(d) <= 0, time.Now().Sub(s) >= d
			switch n.Op {
			case token.LSS, token.GTR, token.LEQ, token.GEQ:
			default:
				return false
			}
			for _, side := range []ast.Expr{n.X, n.Y} {
				if isTimeCall(side, "Since", "Until") {
					return true
				}
				if call, ok := ast.Unparen(side).(*ast.CallExpr); ok {
					if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Sub" && isTimeCall(sel.X, "Now") {
						return true
					}
				}
			}
		}
		return false
	}
	isSleep := func(s ast.Stmt) bool {
		es, ok := s.(*ast.ExprStmt)
		return ok && isTimeCall(es.X, "Sleep")
	}
	// received is the channel a select case receives from (nil for a send
	// or the default case).
	received := func(c *ast.CommClause) ast.Expr {
		var e ast.Expr
		switch s := c.Comm.(type) {
		case *ast.ExprStmt:
			e = s.X
		case *ast.AssignStmt:
			if len(s.Rhs) == 1 {
				e = s.Rhs[0]
			}
		}
		if u, ok := ast.Unparen(e).(*ast.UnaryExpr); ok && u.Op == token.ARROW {
			return u.X
		}
		return nil
	}
	// isTimerChan reports whether ch is time.After(...), a ticker's or
	// timer's x.C, or a context's x.Done().
	isTimerChan := func(ch ast.Expr, done bool) bool {
		if isTimeCall(ch, "After") {
			return true
		}
		switch ch := ast.Unparen(ch).(type) {
		case *ast.SelectorExpr:
			return ch.Sel.Name == "C"
		case *ast.CallExpr:
			sel, ok := ch.Fun.(*ast.SelectorExpr)
			return done && ok && sel.Sel.Name == "Done" && len(ch.Args) == 0
		}
		return false
	}
	// fails reports whether stmts call x.Fatal, x.Fatalf or x.FailNow.
	fails := func(stmts []ast.Stmt) bool {
		found := false
		for _, st := range stmts {
			ast.Inspect(st, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok {
					if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
						switch sel.Sel.Name {
						case "Fatal", "Fatalf", "FailNow":
							found = true
						}
					}
				}
				return !found
			})
		}
		return found
	}

	var out []pollingLoop
	check := func(loop ast.Node, cond ast.Expr, body *ast.BlockStmt) {
		var sleeps, deadline, failsAtDeadline bool
		ast.Inspect(loop, func(n ast.Node) bool {
			if _, ok := n.(*ast.FuncLit); ok {
				return false // another goroutine's or a callback's code, not the loop's
			}
			if c, ok := n.(*ast.CallExpr); ok && isTimeCall(c, "Sleep") {
				sleeps = true
			}
			// In a select: "case <-time.After(d):" or "case <-tick.C:"
			// with nothing to do sleeps; a timer's or a context's case
			// that fails the test is a deadline.
			if c, ok := n.(*ast.CommClause); ok {
				if ch := received(c); ch != nil {
					if len(c.Body) == 0 && isTimerChan(ch, false) {
						sleeps = true
					}
					if fails(c.Body) && isTimerChan(ch, true) {
						deadline = true
					}
				}
			}
			if comparesNow(n) {
				deadline = true
			}
			// "if time.Now().After(deadline) { t.Fatal(...) }": a wait
			// with a deadline, sleeping or not.
			if is, ok := n.(*ast.IfStmt); ok && fails(is.Body.List) {
				ast.Inspect(is.Cond, func(c ast.Node) bool {
					failsAtDeadline = failsAtDeadline || comparesNow(c)
					return !failsAtDeadline
				})
			}
			return true
		})
		switch {
		case sleeps && deadline:
			out = append(out, pollingLoop{fset.Position(loop.Pos()), "a loop that sleeps and checks a deadline: a hand-written poll"})
		case failsAtDeadline:
			out = append(out, pollingLoop{fset.Position(loop.Pos()), "a loop that fails the test at a time.Now() deadline: a hand-written poll"})
		case cond != nil && len(body.List) == 1 && isSleep(body.List[0]):
			out = append(out, pollingLoop{fset.Position(loop.Pos()), "a loop whose body only sleeps: an unbounded poll"})
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ForStmt:
			check(n, n.Cond, n.Body)
		case *ast.RangeStmt:
			check(n, nil, n.Body)
		}
		return true
	})
	return out
}

func TestPollingLoops(t *testing.T) {
	tests := []struct {
		name string
		body string // the body of a function in a file importing time
		want []int  // lines of the loops flagged, counting the backquote's line as 1
	}{
		{"deadline and sleep", `
	deadline := time.Now().Add(time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			panic("late")
		}
		time.Sleep(time.Millisecond)
	}`, []int{3}},
		{"deadline in the condition", `
	deadline := time.Now().Add(time.Second)
	for !ready() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}`, []int{3}},
		{"deadline before now", `
	for {
		if deadline.Before(time.Now()) {
			return
		}
		time.Sleep(time.Millisecond)
	}`, []int{2}},
		{"since", `
	start := time.Now()
	for range 100 {
		if time.Since(start) > time.Second {
			return
		}
		time.Sleep(time.Millisecond)
	}`, []int{3}},
		{"until", `
	for time.Until(deadline) > 0 {
		poll()
		time.Sleep(time.Millisecond)
	}`, []int{2}},
		{"now minus start", `
	for {
		if time.Now().Sub(start) >= limit {
			return
		}
		time.Sleep(time.Millisecond)
	}`, []int{2}},
		{"unbounded poll", `
	for !ready() {
		time.Sleep(time.Millisecond)
	}`, []int{2}},
		{"nested: both loops poll", `
	for {
		for !ready() {
			time.Sleep(time.Millisecond)
		}
		if time.Now().After(deadline) {
			return
		}
	}`, []int{2, 3}},
		{"select sleep until the context ends", `
	for !ready() {
		select {
		case <-ctx.Done():
			t.Fatalf("never ready: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}`, []int{2}},
		{"ticker until a timer fails the test", `
	for {
		if ready() {
			break
		}
		select {
		case <-tick.C:
		case err := <-exited:
			t.Fatal(err)
		case <-deadline.C:
			t.Fatal("late")
		}
	}`, []int{2}},
		{"select sleep with a Now deadline", `
	for {
		if ready() || time.Now().After(deadline) {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Millisecond):
		}
	}`, []int{2}},
		{"paced until the context ends, without failing", `
	for {
		send()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}`, nil},
		{"sampling on a ticker", `
	for {
		select {
		case <-tick.C:
			sample()
		case <-quit:
			return
		}
	}`, nil},
		{"a notification with a deadline, no sleep", `
	for {
		if ready() {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("late")
		}
	}`, nil},
		{"a tight poll that fails at a deadline", `
	for {
		if tryOnce() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still failing")
		}
	}`, []int{2}},
		{"a time limit that is not a failure", `
	for {
		if time.Since(start) > limit {
			break
		}
		send()
	}`, nil},
		{"pacing sleep", `
	for i := range 30 {
		sample(i)
		time.Sleep(100 * time.Millisecond) // pacing
	}`, nil},
		{"paced sends until an end time, no sleep", `
	for time.Now().Before(end) {
		send()
	}`, nil},
		{"sleep without a deadline", `
	for i := 0; i < 3; i++ {
		time.Sleep(time.Second)
		write(i)
	}`, nil},
		{"the sleep is a goroutine's", `
	for time.Now().Before(end) {
		go func() { time.Sleep(time.Millisecond); send() }()
	}`, nil},
		{"a local variable named time", `
	var time clock
	for !time.Now().After(deadline) {
		time.Sleep(1)
	}`, nil},
		{"time.Now as a value, not a comparison", `
	for {
		stamps = append(stamps, time.Now())
		time.Sleep(time.Millisecond)
	}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "package p\n\nimport \"time\"\n\nfunc f() {" + tt.body + "\n}\n"
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "p_test.go", src, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, l := range pollingLoops(fset, f) {
				got = append(got, l.pos.Line-4) // the body starts on line 5, after "func f() {"
			}
			if !equalInts(got, tt.want) {
				t.Errorf("flagged lines %v, want %v", got, tt.want)
			}
		})
	}
}

// An aliased import of time is followed.
func TestPollingLoopsAliasedTime(t *testing.T) {
	src := `package p

import stdtime "time"

func f() {
	for !ready() {
		stdtime.Sleep(stdtime.Millisecond)
	}
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p_test.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := pollingLoops(fset, f); len(got) != 1 || got[0].pos.Line != 6 {
		t.Fatalf("flagged %+v, want the loop on line 6", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNoHandWrittenPolling is the guard: no test file of the module polls
// by hand; tests wait through this package.
func TestNoHandWrittenPolling(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var found []string
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		helper := strings.HasSuffix(filepath.Base(filepath.Dir(path)), "test")
		if !strings.HasSuffix(name, ".go") || !(strings.HasSuffix(name, "_test.go") || helper) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0) // with objects: a local "time" is not the package
		if err != nil {
			return err
		}
		files++
		for _, l := range pollingLoops(fset, f) {
			rel, _ := filepath.Rel(root, l.pos.Filename)
			found = append(found, rel+":"+strconv.Itoa(l.pos.Line)+": "+l.reason)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("checked only %d files under %s: not the module's tests", files, root)
	}
	if len(found) > 0 {
		t.Errorf("hand-written polling loops (wait with testwait.For/True/Wait instead; a sleep that paces on purpose must not check a deadline):\n%s",
			strings.Join(found, "\n"))
	}
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
