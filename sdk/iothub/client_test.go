package iothub

import (
	"testing"
)

func TestConnectTransports(t *testing.T) {
	for _, transport := range []string{TransportMQTT, TransportMQTTWS} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.config(t)
			cfg.Transport = transport
			c := e.dial(t, cfg)
			ctx := testCtx(t)
			v, err := c.UpdateReported(ctx, map[string]any{"hello": "world"})
			if err != nil {
				t.Fatalf("UpdateReported: %v", err)
			}
			tw, err := c.GetTwin(ctx)
			if err != nil {
				t.Fatalf("GetTwin: %v", err)
			}
			if tw.Reported["hello"] != "world" || tw.ReportedVersion != v {
				t.Fatalf("twin = %+v, want reported hello=world at version %d", tw, v)
			}
			if !e.hub.Connected(e.device, "") {
				t.Fatal("hub does not see the device connected")
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal("second Close:", err)
			}
			<-c.Done()
		})
	}
}
