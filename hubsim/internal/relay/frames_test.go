package relay

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// rawDial connects one side with gorilla directly, to see frames.
func (e *env) rawDial(tb testing.TB, url, token string) *websocket.Conn {
	tb.Helper()
	d := websocket.Dialer{TLSClientConfig: e.tlsConfig(), Subprotocols: []string{"MQTT"}}
	ws, _, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		tb.Fatalf("raw dial: %v", err)
	}
	tb.Cleanup(func() { ws.Close() })
	return ws
}

// TestFramesForwardedWhole checks that frames up to 64 KiB reach the peer as
// single frames of the same size (the C SDK sends ≤ 64 KiB frames).
func TestFramesForwardedWhole(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	dev := e.rawDial(t, tk.URL, tk.DeviceToken)
	svc := e.rawDial(t, tk.URL, tk.ServiceToken)
	for _, n := range []int{1, 1000, maxFramePayload - 1, maxFramePayload} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if err := dev.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		svc.SetReadDeadline(time.Now().Add(30 * time.Second))
		mt, got, err := svc.ReadMessage()
		if err != nil || mt != websocket.BinaryMessage || !bytes.Equal(got, msg) {
			t.Fatalf("%d-byte frame arrived as type %d, %d bytes, err %v", n, mt, len(got), err)
		}
	}
}

func TestTextFrameEndsStream(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	dev := e.rawDial(t, tk.URL, tk.DeviceToken)
	svc := e.mustDial(t, tk.URL, tk.ServiceToken)
	if err := dev.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	dev.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _, err := dev.ReadMessage()
	if !websocket.IsCloseError(err, closeUnsupported) {
		t.Fatalf("sender of the text frame: %v, want close 1003", err)
	}
	var ce *stream.CloseError
	if err := readErr(t, svc); !errors.As(err, &ce) || ce.Code != closeGoingAway {
		t.Fatalf("peer: %v, want CloseError 1001", err)
	}
}

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer abc")
	f.Add("bearer ")
	f.Add("Basic xyz")
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearerToken(h)
		if ok && (tok == "" || len(h) != len(bearerScheme)+len(tok)) {
			t.Fatalf("bearerToken(%q) = %q", h, tok)
		}
		if ok {
			if again, ok2 := bearerToken("Bearer " + tok); !ok2 || again != tok {
				t.Fatalf("round trip of %q failed", tok)
			}
		}
	})
}
