//go:build !linux

package relay

import "github.com/gorilla/websocket"

// corker does nothing where TCP_CORK does not exist; see cork_linux.go.
type corker struct{}

func newCorker(*websocket.Conn) *corker { return &corker{} }
func (*corker) hold()                   {}
func (*corker) release() error          { return nil }
