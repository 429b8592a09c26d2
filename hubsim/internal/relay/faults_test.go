package relay

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// Cut ends a stream once it has forwarded the fault's byte count: the
// service reads what came before the cut, then a 1011 close.
func TestFaultCut(t *testing.T) {
	e := newEnv(t, Config{Faults: &Faults{Cut: func(spec StreamSpec) (int64, bool) {
		return 3000, spec.DeviceID == "dev1"
	}}})
	tk := e.create(t, StreamSpec{})
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	svc := e.mustDial(t, tk.URL, tk.ServiceToken)
	chunk := bytes.Repeat([]byte("x"), 1000)
	for range 3 {
		if _, err := dev.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(io.LimitReader(svc, 3000))
	if err != nil || len(got) != 3000 {
		t.Fatalf("read %d bytes before the cut: %v", len(got), err)
	}
	err = readErr(t, svc)
	var ce *stream.CloseError
	if !errors.As(err, &ce) || ce.Code != closeCut {
		t.Fatalf("after the cut: %v, want close %d", err, closeCut)
	}
	e.relay.Close()
	if ops := opNames(e.events.records(t)); ops != "requested connected closed" {
		t.Errorf("events %q", ops)
	}

	// Another device's stream is not cut.
	e2 := newEnv(t, Config{Faults: &Faults{Cut: func(spec StreamSpec) (int64, bool) { return 0, spec.DeviceID == "dev1" }}})
	tk = e2.create(t, StreamSpec{DeviceID: "dev2"})
	dev = e2.mustDial(t, tk.URL, tk.DeviceToken)
	svc = e2.mustDial(t, tk.URL, tk.ServiceToken)
	if _, err := dev.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(io.LimitReader(svc, 1000)); err != nil || len(got) != 1000 {
		t.Fatalf("uncut stream: %d %v", len(got), err)
	}
}

// Stall stops the relay reading one side: the other direction still
// flows, the stalled side's data never arrives.
func TestFaultStall(t *testing.T) {
	e := newEnv(t, Config{Faults: &Faults{Stall: func(spec StreamSpec) (string, bool) { return "device", true }}})
	tk := e.create(t, StreamSpec{})
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	svc := e.mustDial(t, tk.URL, tk.ServiceToken)

	// service → device flows.
	if _, err := svc.Write([]byte("hello device")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(dev, buf, len("hello device"))
	if err != nil || string(buf[:n]) != "hello device" {
		t.Fatalf("service→device: %q %v", buf[:n], err)
	}
	// device → service is dead.
	if _, err := dev.Write([]byte("hello service")); err != nil {
		t.Fatal(err)
	}
	svc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := svc.Read(buf); n != 0 || err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("device→service on a stalled path: %q %v", buf[:n], err)
	}
	if st := e.relay.Stats(); st.BytesDeviceToService != 0 || st.Active != 1 {
		t.Errorf("stats %+v", st)
	}
}
