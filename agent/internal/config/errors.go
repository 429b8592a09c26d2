package config

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one problem in a config file. Load, Parse and Validate
// return them joined with errors.Join, sorted by line.
type FieldError struct {
	File  string // file name as given to Load/Parse; may be empty
	Line  int    // 1-based; 0 when the problem has no position (e.g. a missing section)
	Field string // dotted path like "streams.targets.ssh"; empty for syntax errors
	// Problem says what is wrong. It never contains a secret value.
	Problem string
	// Hint says what is expected, usually starting with "expected".
	Hint string

	// positional is set for problems found while decoding a node, which
	// always have a line; the fuzz test checks that invariant.
	positional bool
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Warning is a problem that does not stop the agent, such as a key file
// readable by other users. Same layout as FieldError.
type Warning struct {
	File    string
	Line    int
	Field   string
	Message string
}

func (w Warning) String() string {
	e := FieldError{File: w.File, Line: w.Line, Field: w.Field, Problem: w.Message}
	return e.Error()
}

// FieldErrors returns the *FieldError values inside err (as returned by
// Load, Parse or Validate), in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		walk(errors.Unwrap(err))
	}
	walk(err)
	return out
}

// joinSorted orders problems by line (positionless ones first), then field,
// and joins them. nil when there are none.
func joinSorted(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Field, b.Field)
	})
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}
