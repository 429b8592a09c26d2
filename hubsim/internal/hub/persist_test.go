package hub

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/store"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

const persistHost = "hub1.example.net"

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func withStore(st *store.Store) func(*Config) { return func(c *Config) { c.Store = st } }

// storedDocs returns twin_docs of persistHost keyed "device/module".
func storedDocs(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	rows, err := st.DB().Query(`SELECT device_id, module_id, doc FROM twin_docs WHERE hub = ?`, persistHost)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var d, m, doc string
		if err := rows.Scan(&d, &m, &doc); err != nil {
			t.Fatal(err)
		}
		out[d+"/"+m] = doc
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hubState is what a restart must keep, as the service API shows it.
type hubState struct {
	Devices []Device
	Modules map[string][]Module
	Twins   map[string]Twin
}

func snapshot(t *testing.T, h *Hub) hubState {
	t.Helper()
	ctx := context.Background()
	s := hubState{Devices: h.ListDevices(ctx), Modules: map[string][]Module{}, Twins: map[string]Twin{}}
	for _, d := range s.Devices {
		tw, err := h.GetTwin(ctx, d.DeviceID, "")
		if err != nil {
			t.Fatal(err)
		}
		s.Twins[d.DeviceID+"/"] = tw
		ms, err := h.ListModules(ctx, d.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		s.Modules[d.DeviceID] = ms
		for _, m := range ms {
			tw, err := h.GetTwin(ctx, d.DeviceID, m.ModuleID)
			if err != nil {
				t.Fatal(err)
			}
			s.Twins[d.DeviceID+"/"+m.ModuleID] = tw
		}
	}
	return s
}

// checkDocs checks that twin_docs holds exactly the twins GET /twins shows.
func checkDocs(t *testing.T, st *store.Store, s hubState) {
	t.Helper()
	docs := storedDocs(t, st)
	if len(docs) != len(s.Twins) {
		t.Errorf("twin_docs has %d rows, the hub %d twins", len(docs), len(s.Twins))
	}
	for k, tw := range s.Twins {
		want, err := json.Marshal(tw)
		if err != nil {
			t.Fatal(err)
		}
		if docs[k] != string(want) {
			t.Errorf("twin_docs %s =\n%s\nwant (GET /twins)\n%s", k, docs[k], want)
		}
	}
}

func TestPersistAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	st := openStore(t, path)
	e := newEnvWith(t, withStore(st))
	h := e.hub(persistHost)

	key1 := e.device(h, "d1")
	if _, err := h.CreateDevice(ctx, Device{DeviceID: "d2", StatusReason: "lab",
		Authentication: &Authentication{Type: AuthSelfSigned, X509Thumbprint: &X509Thumbprint{PrimaryThumbprint: strings.Repeat("ab", 20)}},
		Capabilities:   &Capabilities{IoTEdge: true}}); err != nil {
		t.Fatal(err)
	}
	e.device(h, "gone")
	if _, err := h.CreateModule(ctx, Module{DeviceID: "d1", ModuleID: "m1", ManagedBy: "me"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateModule(ctx, Module{DeviceID: "d1", ModuleID: "m2"}); err != nil {
		t.Fatal(err)
	}
	if err := h.DeleteModule(ctx, "d1", "m2", "*"); err != nil {
		t.Fatal(err)
	}
	if err := h.DeleteDevice(ctx, "gone", "*"); err != nil {
		t.Fatal(err)
	}
	big := json.Number("12345678901234567890.5") // must come back digit for digit
	if _, err := h.UpdateTwin(ctx, "d1", "", TwinPatch{
		Tags:    map[string]any{"site": map[string]any{"floor": json.Number("3"), "name": "lab"}},
		Desired: map[string]any{"rate": big, "cfg": map[string]any{"a": true, "b": []any{"x", json.Number("1")}}},
	}, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateTwin(ctx, "d1", "", TwinPatch{Desired: map[string]any{"cfg": map[string]any{"a": nil}}}, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateTwin(ctx, "d1", "m1", TwinPatch{Tags: map[string]any{"role": "edge"}}, "*"); err != nil {
		t.Fatal(err)
	}
	// The device reports properties over MQTT; the 204 comes after the write.
	d := e.connectDevice(h, "d1", key1)
	d.sub(topicTwinResPrefix + "#")
	if err := d.pub(topicTwinPatchReported+"?$rid=7", `{"fw":"1.2","temp":{"c":21.5}}`); err != nil {
		t.Fatal(err)
	}
	if m := d.next(); !strings.HasPrefix(m.topic, topicTwinResPrefix+"204/") {
		t.Fatalf("reported patch answered %q", m.topic)
	}
	for _, body := range []string{"one", "two"} {
		if err := h.SendC2D(ctx, "d2", C2DMessage{Body: []byte(body), Properties: map[string]string{"k": body}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.SetStatus(ctx, "d2", StatusDisabled); err != nil {
		t.Fatal(err)
	}

	// While d1 is connected, its document says so.
	if doc := storedDocs(t, st)["d1/"]; !strings.Contains(doc, `"connectionState":"Connected"`) {
		t.Fatalf("d1's twin document while connected: %s", doc)
	}
	checkDocs(t, st, snapshot(t, h))

	d.out.Close()
	d.waitClosed()
	waitDisconnected(t, h, "d1")
	before := snapshot(t, h)
	checkDocs(t, st, before)
	if err := e.set.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := openStore(t, path)
	e2 := newEnvWith(t, withStore(st2))
	h2 := e2.hub(persistHost)
	after := snapshot(t, h2)
	if !reflect.DeepEqual(before, after) {
		b, _ := json.MarshalIndent(before, "", " ")
		a, _ := json.MarshalIndent(after, "", " ")
		t.Fatalf("state changed across the restart\nbefore: %s\nafter: %s", b, a)
	}
	checkDocs(t, st2, after)
	if got := after.Twins["d1/"].Properties.Desired["rate"]; got != big {
		t.Errorf("desired rate = %#v, want %#v", got, big)
	}
	if after.Devices[1].CloudToDeviceMessageCount != 2 {
		t.Errorf("d2 has %d C2D messages queued after the restart, want 2", after.Devices[1].CloudToDeviceMessageCount)
	}

	// Etags and generations keep counting: nothing new reuses an old one.
	old := map[string]bool{}
	for _, dv := range before.Devices {
		old[dv.ETag], old[dv.GenerationID] = true, true
	}
	n, err := h2.CreateDevice(ctx, Device{DeviceID: "d3"})
	if err != nil {
		t.Fatal(err)
	}
	if old[n.ETag] || old[n.GenerationID] {
		t.Errorf("new device reuses etag %s / generation %s", n.ETag, n.GenerationID)
	}
	// The old device key still authenticates: no re-enrollment needed.
	d = e2.connectDevice(h2, "d1", key1)
	d.sub("devices/d1/messages/devicebound/#")
	if purged, err := h2.PurgeC2D(ctx, "d2"); err != nil || purged != 2 {
		t.Fatalf("purge after restart = %d, %v", purged, err)
	}
	checkDocs(t, st2, snapshot(t, h2))
}

// waitDisconnected waits until the hub shows the device offline.
func waitDisconnected(t *testing.T, h *Hub, id string) {
	t.Helper()
	testwait.For(t, waitTimeout, id+" offline", func() (bool, string) {
		dv, err := h.GetDevice(context.Background(), id)
		if err != nil {
			return false, err.Error()
		}
		return dv.ConnectionState == stateDisconnected, dv.ConnectionState
	})
}

func TestPersistC2DDelivered(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	st := openStore(t, path)
	e := newEnvWith(t, withStore(st))
	h := e.hub(persistHost)
	key := e.device(h, "d1")
	for _, body := range []string{"a", "b", "c"} {
		if err := h.SendC2D(ctx, "d1", C2DMessage{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := e.connect(connOpts{ack: true, username: persistHost + "/d1/?api-version=2021-04-12", clientID: "d1",
		password: sign(persistHost+"/devices/d1", key, "", e.clock.Now().Add(3600e9), true)})
	if err != nil {
		t.Fatal(err)
	}
	// The fake broker learns of the subscription before the hub does, so the
	// hub's first delivery attempt is not refused (that path is the C2D
	// batch fix's test, not this one's).
	const filter = "devices/d1/messages/devicebound/#"
	d.out.mu.Lock()
	d.out.subs[filter] = 1
	d.out.mu.Unlock()
	if _, ok := d.sess.Subscribe(filter, 1); !ok {
		t.Fatal("subscribe refused")
	}
	for _, want := range []string{"a", "b", "c"} {
		if m := d.next(); string(m.payload) != want {
			t.Fatalf("delivered %q, want %q", m.payload, want)
		}
	}
	// Delivered but not acknowledged: a restart now would deliver them again.
	if msgs := waitStoredC2D(t, st, 3); string(msgs[0].Body) != "a" || string(msgs[2].Body) != "c" {
		t.Fatalf("stored queue = %+v", msgs)
	}
	d.out.puback()
	waitStoredC2D(t, st, 0)
	if doc := storedDocs(t, st)["d1/"]; !strings.Contains(doc, `"cloudToDeviceMessageCount":0`) {
		t.Errorf("twin document after delivery: %s", doc)
	}
}

// waitStoredC2D waits until the store holds n messages for persistHost.
func waitStoredC2D(t *testing.T, st *store.Store, n int) []store.C2D {
	t.Helper()
	var msgs []store.C2D
	testwait.True(t, waitTimeout, "the store to hold the unacknowledged messages", func() bool {
		var err error
		msgs, err = st.C2D(context.Background(), persistHost)
		return err == nil && len(msgs) == n
	})
	return msgs
}

func TestPersistFailureRefusesAndRollsBack(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), store.FileName))
	e := newEnvWith(t, withStore(st))
	h := e.hub(persistHost)
	e.device(h, "d1")
	if _, err := h.CreateModule(ctx, Module{DeviceID: "d1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendC2D(ctx, "d1", C2DMessage{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, h)
	if err := st.Close(); err != nil { // every write now fails
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"create device", func() error { _, err := h.CreateDevice(ctx, Device{DeviceID: "d2"}); return err }},
		{"update device", func() error { return h.SetStatus(ctx, "d1", StatusDisabled) }},
		{"delete device", func() error { return h.DeleteDevice(ctx, "d1", "*") }},
		{"create module", func() error { _, err := h.CreateModule(ctx, Module{DeviceID: "d1", ModuleID: "m2"}); return err }},
		{"update module", func() error {
			_, err := h.UpdateModule(ctx, Module{DeviceID: "d1", ModuleID: "m1", ManagedBy: "x"}, "*")
			return err
		}},
		{"delete module", func() error { return h.DeleteModule(ctx, "d1", "m1", "*") }},
		{"update twin", func() error {
			_, err := h.UpdateTwin(ctx, "d1", "", TwinPatch{Tags: map[string]any{"a": "b"}, Desired: map[string]any{"c": "d"}}, "*")
			return err
		}},
		{"replace twin", func() error {
			_, err := h.ReplaceTwin(ctx, "d1", "m1", TwinPatch{Tags: map[string]any{}}, "*")
			return err
		}},
		{"send c2d", func() error { return h.SendC2D(ctx, "d1", C2DMessage{Body: []byte("y")}) }},
		{"purge c2d", func() error { _, err := h.PurgeC2D(ctx, "d1"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, store.ErrClosed) {
				t.Fatalf("err = %v, want the store's error", err)
			}
			if after := snapshot(t, h); !reflect.DeepEqual(before, after) {
				t.Fatalf("a refused write changed the hub\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}
