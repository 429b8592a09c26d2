package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait in these tests; it only matters when a test
// is about to fail.
const waitTimeout = 20 * time.Second

// --- TLS material -----------------------------------------------------------

var (
	tlsOnce   sync.Once
	tlsServer *tls.Config
	tlsClient *tls.Config
)

// testTLS returns a server config with a self-signed certificate for
// 127.0.0.1 and a client config that trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	tlsOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "broker test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:              []string{"localhost"},
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		tlsServer = &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
			MinVersion:   tls.VersionTLS12,
		}
		tlsClient = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	})
	return tlsServer.Clone(), tlsClient.Clone()
}

// --- a recording personality ------------------------------------------------

type event struct {
	kind    string // connect, subscribe, unsubscribe, publish, disconnected
	client  string
	topic   string
	payload []byte
	qos     byte
	err     error
	info    ConnectInfo
}

// recorder keeps every event and lets tests wait for one.
type recorder struct {
	mu     sync.Mutex
	events []event       // guarded by mu
	change chan struct{} // closed and replaced on every append; guarded by mu
}

func newRecorder() *recorder { return &recorder{change: make(chan struct{})} }

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.change)
	r.change = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

// wait returns the first recorded event (in order) that match accepts.
func (r *recorder) wait(t testing.TB, what string, match func(event) bool) event {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if match(e) {
				r.mu.Unlock()
				return e
			}
		}
		ch := r.change
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; events: %+v", what, r.all())
		}
	}
}

func (r *recorder) waitKind(t testing.TB, kind, client string) event {
	t.Helper()
	return r.wait(t, kind+" of "+client, func(e event) bool { return e.kind == kind && e.client == client })
}

type fakePersonality struct {
	prefix string            // claims usernames starting with prefix
	refuse map[string]bool   // filters Subscribe refuses; guarded by mu
	push   map[string]string // filter → topic Subscribe publishes to at once; guarded by mu
	pubErr func(topic string) error
	rec    *recorder

	mu         sync.Mutex
	outs       map[string]Outbound // latest Outbound per client id; guarded by mu
	connectErr error               // returned by Connect; guarded by mu
}

func (p *fakePersonality) setConnectErr(err error) {
	p.mu.Lock()
	p.connectErr = err
	p.mu.Unlock()
}

func newFake(prefix string) *fakePersonality {
	return &fakePersonality{prefix: prefix, rec: newRecorder(), outs: map[string]Outbound{}, refuse: map[string]bool{}, push: map[string]string{}}
}

func (p *fakePersonality) Claims(username string) bool { return strings.HasPrefix(username, p.prefix) }

func (p *fakePersonality) Connect(info ConnectInfo, out Outbound) (Session, error) {
	p.mu.Lock()
	if err := p.connectErr; err != nil {
		p.mu.Unlock()
		return nil, err
	}
	p.outs[info.ClientID] = out
	p.mu.Unlock()
	p.rec.add(event{kind: "connect", client: info.ClientID, info: info})
	return &fakeSession{p: p, id: info.ClientID, out: out}, nil
}

func (p *fakePersonality) out(t testing.TB, id string) Outbound {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.outs[id]
	if o == nil {
		t.Fatalf("no Outbound for %q", id)
	}
	return o
}

type fakeSession struct {
	p   *fakePersonality
	id  string
	out Outbound
}

func (s *fakeSession) Subscribe(filter string, qos byte) (byte, bool) {
	s.p.rec.add(event{kind: "subscribe", client: s.id, topic: filter, qos: qos})
	s.p.mu.Lock()
	topic, push := s.p.push[filter]
	refuse := s.p.refuse[filter]
	s.p.mu.Unlock()
	if push {
		err := s.out.Publish(topic, []byte("pushed"), 1)
		s.p.rec.add(event{kind: "pushed", client: s.id, topic: topic, err: err})
	}
	if refuse {
		return 0, false
	}
	return qos, true
}

func (s *fakeSession) Unsubscribe(filter string) {
	s.p.rec.add(event{kind: "unsubscribe", client: s.id, topic: filter})
}

func (s *fakeSession) Publish(topic string, payload []byte, qos byte) error {
	s.p.rec.add(event{kind: "publish", client: s.id, topic: topic, payload: append([]byte(nil), payload...), qos: qos})
	if s.p.pubErr != nil {
		return s.p.pubErr(topic)
	}
	return nil
}

func (s *fakeSession) Disconnected(err error) {
	s.p.rec.add(event{kind: "disconnected", client: s.id, err: err})
}

// --- a broker on a loopback listener ---------------------------------------

type harness struct {
	b      *Broker
	addr   string
	client *tls.Config // nil when serving plain TCP
	served chan error  // every ServeConn result
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newHarness serves cfg's broker on 127.0.0.1 (TLS unless plain) and stops
// everything at cleanup.
func newHarness(t testing.TB, plain bool, cfg Config) *harness {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{b: b, addr: ln.Addr().String(), served: make(chan error, 4096)}
	var srvTLS *tls.Config
	if !plain {
		srvTLS, h.client = testTLS(t)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if srvTLS != nil {
				c = tls.Server(c, srvTLS)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := b.ServeConn(context.Background(), c, TransportTLS)
				select {
				case h.served <- err:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wg.Wait()
	})
	return h
}

// nextServed returns the next ServeConn result.
func (h *harness) nextServed(t testing.TB) error {
	t.Helper()
	select {
	case err := <-h.served:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for ServeConn to return")
		return nil
	}
}

// --- a raw MQTT client -------------------------------------------------------

type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func (h *harness) dialRaw(t testing.TB) *rawClient {
	t.Helper()
	var c net.Conn
	var err error
	if h.client != nil {
		c, err = tls.Dial("tcp", h.addr, h.client)
	} else {
		c, err = net.Dial("tcp", h.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
}

func connectPacket(id, username, password string, keepalive uint16, clean bool) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            clean,
			Keepalive:        keepalive,
			ClientIdentifier: id,
			UsernameFlag:     true,
			Username:         []byte(username),
			PasswordFlag:     password != "",
			Password:         []byte(password),
		},
	}
}

// encodeClient serialises a client→server packet.
func encodeClient(t testing.TB, pk packets.Packet) []byte {
	t.Helper()
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = 4
	}
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		pk.FixedHeader.Qos = 1
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (r *rawClient) send(pk packets.Packet) {
	r.t.Helper()
	r.sendBytes(encodeClient(r.t, pk))
}

func (r *rawClient) sendBytes(b []byte) {
	r.t.Helper()
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// read returns the next server packet.
func (r *rawClient) read() (packets.Packet, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	return readServerPacket(r.br)
}

func (r *rawClient) mustRead(typ byte) packets.Packet {
	r.t.Helper()
	pk, err := r.read()
	if err != nil {
		r.t.Fatalf("reading %s: %v", packetName(typ), err)
	}
	if pk.FixedHeader.Type != typ {
		r.t.Fatalf("got %s, want %s", packetName(pk.FixedHeader.Type), packetName(typ))
	}
	return pk
}

// expectClosed waits until the server closes the connection.
func (r *rawClient) expectClosed() {
	r.t.Helper()
	for {
		pk, err := r.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatal("server did not close the connection")
			}
			return
		}
		r.t.Logf("while waiting for close: got %s", packetName(pk.FixedHeader.Type))
	}
}

// connect sends CONNECT and returns the CONNACK return code.
func (r *rawClient) connect(id, username string, keepalive uint16) byte {
	r.t.Helper()
	r.send(connectPacket(id, username, "pw", keepalive, false))
	return r.mustRead(packets.Connack).ReasonCode
}

func (r *rawClient) subscribe(id uint16, filters ...packets.Subscription) []byte {
	r.t.Helper()
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id, Filters: filters})
	pk := r.mustRead(packets.Suback)
	if pk.PacketID != id {
		r.t.Fatalf("SUBACK id %d, want %d", pk.PacketID, id)
	}
	return pk.ReasonCodes
}

func (r *rawClient) publish(topic string, payload []byte, qos byte, id uint16) {
	r.t.Helper()
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: payload, PacketID: id})
}

// readServerPacket decodes one server→client packet.
func readServerPacket(br *bufio.Reader) (packets.Packet, error) {
	var pk packets.Packet
	hb, err := br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, err := readLength(br)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = 4
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected server packet %s", packetName(pk.FixedHeader.Type))
	}
	return pk, err
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
