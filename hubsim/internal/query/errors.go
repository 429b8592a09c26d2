package query

import (
	"errors"
	"fmt"
)

// ErrQuery is matched (errors.Is) by every *Error: the query text is invalid
// or uses something hubsim does not support. The hub answers it with 400.
var ErrQuery = errors.New("query: bad query")

// ErrContinuation is matched by errors for a continuation token that is
// malformed or belongs to another query.
var ErrContinuation = errors.New("query: bad continuation token")

// Error is a query the parser or compiler refused.
type Error struct {
	// Pos is the byte offset in the query text the error refers to.
	Pos int
	// Unsupported is true for valid IoT Hub syntax hubsim does not implement
	// (the message names it); false for text that is not a valid query.
	Unsupported bool
	Msg         string
}

func (e *Error) Error() string {
	kind := "syntax error"
	if e.Unsupported {
		kind = "unsupported by hubsim"
	}
	return fmt.Sprintf("query %s at offset %d: %s", kind, e.Pos, e.Msg)
}

// Is makes errors.Is(err, ErrQuery) true.
func (e *Error) Is(target error) bool { return target == ErrQuery }

func errorf(pos int, unsupported bool, format string, args ...any) *Error {
	return &Error{Pos: pos, Unsupported: unsupported, Msg: fmt.Sprintf(format, args...)}
}
