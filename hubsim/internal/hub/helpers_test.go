package hub

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait; it only matters when a test is about to fail.
const waitTimeout = 10 * time.Second

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// ---- fake clock ----

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

// fakeClock is Config.Now and Config.AfterFunc; Advance fires due timers.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// pending reports how many timers are armed.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// Advance moves time forward and runs the timers that came due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// waitTimers waits until at least n timers are armed (a goroutine under test
// arms its timeout asynchronously).
func (c *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	testwait.For(t, waitTimeout, fmt.Sprintf("%d armed timers", n), func() (bool, string) {
		have := c.pending()
		return have >= n, fmt.Sprintf("%d armed", have)
	})
}

// ---- fake relay ----

type fakeRelay struct {
	mu       sync.Mutex
	n        int
	throttle bool
	created  []relay.StreamSpec
	cancels  []string
	accepted []string
}

func (r *fakeRelay) Accepted(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = append(r.accepted, id)
}

func (r *fakeRelay) acceptedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.accepted...)
}

func (r *fakeRelay) Create(spec relay.StreamSpec) (relay.Ticket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.throttle {
		return relay.Ticket{}, fmt.Errorf("fake: %w", relay.ErrThrottled)
	}
	r.n++
	r.created = append(r.created, spec)
	id := fmt.Sprintf("s%d", r.n)
	return relay.Ticket{ID: id, URL: "wss://127.0.0.1:443/bridges/" + spec.Hub + "/" + spec.DeviceID + "/" + id,
		DeviceToken: "dtok-" + id, ServiceToken: "stok-" + id}, nil
}

func (r *fakeRelay) Cancel(id, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancels = append(r.cancels, id)
}

func (r *fakeRelay) cancelled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cancels...)
}

// ---- test set ----

type env struct {
	t     *testing.T
	set   *Set
	clock *fakeClock
	relay *fakeRelay
}

func newEnv(t *testing.T, hosts ...string) *env {
	t.Helper()
	return newEnvWith(t, nil, hosts...)
}

// newEnvWith is newEnv with a hook to adjust the Config.
func newEnvWith(t *testing.T, adjust func(*Config), hosts ...string) *env {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"hub1.example.net"}
	}
	e := &env{t: t, clock: &fakeClock{now: t0}, relay: &fakeRelay{}}
	var hcs []HubConfig
	for _, h := range hosts {
		hcs = append(hcs, HubConfig{HostName: h})
	}
	cfg := Config{Hubs: hcs, Relay: e.relay, Now: e.clock.Now, AfterFunc: e.clock.AfterFunc}
	if adjust != nil {
		adjust(&cfg)
	}
	s, err := NewSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.set = s
	t.Cleanup(func() { _ = s.Close() })
	return e
}

func (e *env) hub(host string) *Hub {
	e.t.Helper()
	h, ok := e.set.Hub(host)
	if !ok {
		e.t.Fatalf("no hub %s", host)
	}
	return h
}

// device creates an enabled SAS device and returns its primary key.
func (e *env) device(h *Hub, id string) string {
	e.t.Helper()
	d, err := h.CreateDevice(context.Background(), Device{DeviceID: id})
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Authentication.SymmetricKey.PrimaryKey
}

// sign makes a SAS token. encodeSR percent-encodes sr as the Node SDK does.
func sign(sr, keyB64, skn string, expiry time.Time, encodeSR bool) string {
	key, _ := base64.StdEncoding.DecodeString(keyB64)
	if encodeSR {
		sr = url.QueryEscape(sr)
	}
	se := fmt.Sprint(expiry.Unix())
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sr + "\n" + se))
	tok := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil))) + "&se=" + se
	if skn != "" {
		tok += "&skn=" + skn
	}
	return tok
}

// ---- fake broker side of one connection ----

type published struct {
	topic   string
	payload []byte
	qos     byte
}

// fakeOut is broker.Outbound (and AckOutbound when acking is set) for one
// connection, recording what the hub publishes.
type fakeOut struct {
	mu      sync.Mutex
	subs    map[string]byte
	closed  bool
	sess    broker.Session
	msgs    chan published
	acking  bool
	acks    []func(bool) // pending PUBACK callbacks
	closedC chan struct{}
	wg      sync.WaitGroup
	refused int // publishes refused with ErrNotSubscribed
}

func newFakeOut() *fakeOut {
	return &fakeOut{subs: map[string]byte{}, msgs: make(chan published, 200), closedC: make(chan struct{})}
}

func (o *fakeOut) Publish(topic string, payload []byte, qos byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return broker.ErrClosed
	}
	granted, ok := o.grantedLocked(topic)
	if !ok {
		o.refused++
		return broker.ErrNotSubscribed
	}
	o.msgs <- published{topic, bytes.Clone(payload), min(qos, granted)}
	return nil
}

func (o *fakeOut) grantedLocked(topic string) (byte, bool) {
	var q byte
	ok := false
	for f, g := range o.subs {
		if matchFilter(f, topic) {
			ok = true
			q = max(q, g)
		}
	}
	return q, ok
}

func (o *fakeOut) Subscribed(topic string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.grantedLocked(topic)
	return ok && !o.closed
}

// Close mimics the broker: the client goes away and, later, on another
// goroutine, the session hears Disconnected.
func (o *fakeOut) Close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	acks := o.acks
	o.acks = nil
	sess := o.sess
	o.mu.Unlock()
	close(o.closedC)
	for _, a := range acks {
		a(false)
	}
	if sess != nil {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			sess.Disconnected(broker.ErrServerDisconnect)
		}()
	}
}

// ackingOut adds PublishAcked to fakeOut.
type ackingOut struct{ *fakeOut }

func (o ackingOut) PublishAcked(topic string, payload []byte, acked func(bool)) error {
	if err := o.Publish(topic, payload, 1); err != nil {
		return err
	}
	o.mu.Lock()
	o.acks = append(o.acks, acked)
	o.mu.Unlock()
	return nil
}

// puback acknowledges every delivered QoS 1 message.
func (o *fakeOut) puback() {
	o.mu.Lock()
	acks := o.acks
	o.acks = nil
	o.mu.Unlock()
	for _, a := range acks {
		a(true)
	}
}

func matchFilter(filter, topic string) bool {
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

// dev is a connected fake device.
type dev struct {
	t    *testing.T
	out  *fakeOut
	sess broker.Session
}

type connOpts struct {
	username, clientID string
	password           string
	ack                bool
	info               func(*broker.ConnectInfo)
}

// connect runs a CONNECT through the Set and returns the session or the error.
func (e *env) connect(o connOpts) (*dev, error) {
	e.t.Helper()
	out := newFakeOut()
	var ob broker.Outbound = out
	if o.ack {
		ob = ackingOut{out}
	}
	info := broker.ConnectInfo{ClientID: o.clientID, Username: o.username, Password: []byte(o.password),
		Transport: "mqtt", Remote: "127.0.0.1:50000", LocalAddr: "127.0.0.1:8883"}
	if o.info != nil {
		o.info(&info)
	}
	if !e.set.Claims(info.Username) {
		return nil, fmt.Errorf("username %q not claimed", info.Username)
	}
	sess, err := e.set.Connect(info, ob)
	if err != nil {
		return nil, err
	}
	out.mu.Lock()
	out.sess = sess
	out.mu.Unlock()
	d := &dev{t: e.t, out: out, sess: sess}
	e.t.Cleanup(func() {
		out.Close()
		out.wg.Wait()
	})
	return d, nil
}

// connectDevice connects deviceID on h with a fresh SAS token.
func (e *env) connectDevice(h *Hub, id, key string) *dev {
	e.t.Helper()
	d, err := e.connect(connOpts{
		username: h.HostName() + "/" + id + "/?api-version=2021-04-12",
		clientID: id,
		password: sign(h.HostName()+"/devices/"+id, key, "", e.clock.Now().Add(time.Hour), true),
	})
	if err != nil {
		e.t.Fatalf("connect %s: %v", id, err)
	}
	return d
}

func (d *dev) sub(filters ...string) {
	d.t.Helper()
	for _, f := range filters {
		g, ok := d.sess.Subscribe(f, 1)
		if !ok {
			d.t.Fatalf("subscribe %q refused", f)
		}
		d.out.mu.Lock()
		d.out.subs[f] = g
		d.out.mu.Unlock()
	}
}

func (d *dev) pub(topic string, payload string) error {
	return d.sess.Publish(topic, []byte(payload), 1)
}

// next returns the next message the hub published to this device.
func (d *dev) next() published {
	d.t.Helper()
	select {
	case m := <-d.out.msgs:
		return m
	case <-time.After(waitTimeout):
		d.t.Fatal("timed out waiting for a publish from the hub")
		return published{}
	}
}

// none checks nothing more was published once the hub is idle.
func (d *dev) none() {
	d.t.Helper()
	select {
	case m := <-d.out.msgs:
		d.t.Fatalf("unexpected publish %q %s", m.topic, m.payload)
	default:
	}
}

func (d *dev) waitClosed() {
	d.t.Helper()
	select {
	case <-d.out.closedC:
	case <-time.After(waitTimeout):
		d.t.Fatal("timed out waiting for the hub to drop the connection")
	}
	d.out.wg.Wait()
}

// ---- REST helpers ----

type restClient struct {
	t     *testing.T
	srv   *httptest.Server
	host  string // Host header; "" keeps the server address
	token string
}

func (e *env) rest(host, policy string) *restClient {
	e.t.Helper()
	srv := httptest.NewServer(e.set)
	e.t.Cleanup(srv.Close)
	h := e.hub(host)
	p, ok := h.Policy(policy)
	if !ok {
		e.t.Fatalf("no policy %s", policy)
	}
	return &restClient{t: e.t, srv: srv, host: host,
		token: sign(host, p.PrimaryKey, policy, e.clock.Now().Add(time.Hour), false)}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (c *restClient) do(method, path string, body any, hdr map[string]string) resp {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.srv.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.host != "" {
		req.Host = c.host
	}
	if c.token != "" {
		req.Header.Set("Authorization", c.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

// wantAzureError checks Azure's REST error shape.
func wantAzureError(t *testing.T, r resp, status int, name string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if got := r.header.Get("iothub-errorcode"); got != name {
		t.Errorf("iothub-errorcode %q, want %q", got, name)
	}
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var b restErrorBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	code, msg, ok := strings.Cut(b.Message, ";")
	if !ok || code != "ErrorCode:"+name || msg == "" {
		t.Errorf("Message %q, want ErrorCode:%s;<text>", b.Message, name)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }
