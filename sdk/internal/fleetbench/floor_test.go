package fleetbench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The floor: what the same clients reach, on the same machine, against
// the least an MQTT-over-TLS server written in Go can do. A process of its
// own (the test binary re-run as TestHubLoadFloorServer) accepts any
// credentials, grants every subscription, acknowledges every QoS 1
// PUBLISH from the connection's own goroutine and keeps nothing: no
// registry, no sessions, no keepalive deadline, no tap. Run at 1,000 and
// at the large fleet's size in the same alternating rounds as hubsim, it
// shows how much of hubsim's 10,000/1,000 ratio is the machine's (the
// kernel's loopback TCP, TLS, the Go scheduler and the clients, all
// sharing two cores) and how much is hubsim's own.
const (
	// envFloorSpec, set only in the floor server process, names its spec
	// file (floorSpec).
	envFloorSpec = "PORTHOLE_BENCH_HUB_FLOOR_SERVER"
	// envLoadFloor=0 leaves the floor out of a hub load with a fleet
	// other than 1,000 devices (it runs by default there).
	envLoadFloor = "PORTHOLE_BENCH_HUB_FLOOR"
	// floorMaxPacket bounds a packet the floor reads (hubsim's limit is
	// Azure's 256 KiB message plus headers; the load sends a few bytes).
	floorMaxPacket = 1 << 20
)

// floorSpec is what the floor server needs.
type floorSpec struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// TestHubLoadFloorServer is the floor server; it is skipped unless a hub
// load started this process as one. It writes its address to file
// descriptor 3 and serves until its stdin ends.
func TestHubLoadFloorServer(t *testing.T) {
	var spec floorSpec
	childSpec(t, envFloorSpec, "the floor server", &spec)
	cert, err := tls.LoadX509KeyPair(spec.CertFile, spec.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	report := os.NewFile(3, "report")
	if report == nil {
		t.Fatal("no report descriptor (fd 3)")
	}
	if _, err := fmt.Fprintln(report, ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	report.Close()
	var conns sync.WaitGroup
	defer conns.Wait()
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	go func() { // owned by this test: stdin's end closes the listener and every connection
		_, _ = io.Copy(io.Discard, os.Stdin)
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	for {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		conn := tls.Server(raw, cfg)
		mu.Lock()
		open[conn] = struct{}{}
		mu.Unlock()
		conns.Add(1)
		go func() { // owned by the server: ends with the connection
			defer conns.Done()
			floorServe(conn)
			mu.Lock()
			delete(open, conn)
			mu.Unlock()
			conn.Close()
		}()
	}
}

// floorServe answers one connection's packets: CONNACK 0 to CONNECT,
// SUBACK granting at most QoS 1, PUBACK to a QoS 1 PUBLISH, UNSUBACK,
// PINGRESP; DISCONNECT or anything malformed ends it.
func floorServe(conn net.Conn) {
	br := bufio.NewReaderSize(conn, 4096)
	var body []byte
	for {
		hdr, err := br.ReadByte()
		if err != nil {
			return
		}
		n, err := floorLength(br)
		if err != nil || n > floorMaxPacket {
			return
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		reply, ok := floorReply(hdr, body)
		if !ok {
			return
		}
		if reply != nil {
			if _, err := conn.Write(reply); err != nil {
				return
			}
		}
	}
}

// floorReply is the floor's answer to one packet (nil: none) and whether
// the connection goes on.
func floorReply(hdr byte, body []byte) ([]byte, bool) {
	switch hdr >> 4 {
	case 1: // CONNECT
		return []byte{0x20, 2, 0, 0}, true
	case 3: // PUBLISH
		if (hdr>>1)&3 != 1 {
			return nil, true
		}
		if len(body) < 2 {
			return nil, false
		}
		tl := int(body[0])<<8 | int(body[1])
		if len(body) < 4+tl {
			return nil, false
		}
		return []byte{0x40, 2, body[2+tl], body[3+tl]}, true
	case 8: // SUBSCRIBE
		if len(body) < 2 {
			return nil, false
		}
		codes := []byte{}
		for rest := body[2:]; len(rest) > 0; {
			if len(rest) < 3 {
				return nil, false
			}
			l := int(rest[0])<<8 | int(rest[1])
			if len(rest) < 3+l {
				return nil, false
			}
			codes = append(codes, min(rest[2+l]&3, 1))
			rest = rest[3+l:]
		}
		if len(codes) == 0 || len(codes) > 125 {
			return nil, false
		}
		return append([]byte{0x90, byte(2 + len(codes)), body[0], body[1]}, codes...), true
	case 10: // UNSUBSCRIBE
		if len(body) < 2 {
			return nil, false
		}
		return []byte{0xB0, 2, body[0], body[1]}, true
	case 12: // PINGREQ
		return []byte{0xD0, 0}, true
	default: // DISCONNECT, and what a client never sends
		return nil, false
	}
}

// floorLength reads an MQTT remaining length (at most four bytes).
func floorLength(br *bufio.Reader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, errors.New("remaining length longer than four bytes")
}

// floorProc is a running floor server.
type floorProc struct {
	*childProc
	addr   string
	caFile string
}

// startFloor starts a floor server process with a certificate for loadHub
// from a CA of its own (caFile).
func startFloor(t *testing.T, ctx context.Context) *floorProc {
	t.Helper()
	dir := t.TempDir()
	caFile, certFile, keyFile := floorCerts(t, dir)
	spec := floorSpec{CertFile: certFile, KeyFile: keyFile}
	child, pr, err := startChild("TestHubLoadFloorServer", envFloorSpec, filepath.Join(dir, "floor.json"), spec)
	if err != nil {
		t.Fatalf("starting the floor server: %v", err)
	}
	p := &floorProc{childProc: child, caFile: caFile}
	t.Cleanup(func() { p.stop(t) })
	line := make(chan string, 1)
	go func() { // ends at the pipe's first line or EOF
		defer pr.Close()
		s, _ := bufio.NewReader(pr).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if p.addr = trimLine(s); p.addr == "" {
			t.Fatalf("the floor server gave no address:\n%s", p.stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("the floor server did not start: %v", ctx.Err())
	}
	return p
}

func trimLine(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// stop ends the floor server (stdin closed; killed after 30 s).
func (p *floorProc) stop(t *testing.T) {
	_ = p.stdin.Close()
	p.wait(t, "floor server")
}

// floorCerts writes a CA and a certificate for loadHub signed by it.
func floorCerts(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "porthole floor CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: loadHub}, DNSNames: []string{loadHub},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}

// floorLoad is one fleet's telemetry against a floor server: the same
// client workers as a hub load, no devices to create (any key is taken).
type floorLoad struct {
	t          *testing.T
	n          int
	server     *floorProc
	clients    *workerFleet
	clientPIDs []int
	roundTotals
}

// startFloorLoad starts a floor server and connects n devices to it.
func startFloorLoad(t *testing.T, ctx context.Context, n, workers int) *floorLoad {
	l := &floorLoad{t: t, n: n, server: startFloor(t, ctx)}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = base64.StdEncoding.EncodeToString([]byte("floor-key-" + strconv.Itoa(i))) // never checked
	}
	l.clients = startWorkers(t, ctx, workers, loadHub, l.server.caFile, l.server.addr, keys)
	l.clientPIDs = l.clients.pids()
	_, _, failed, firstErr, err := l.clients.connect(ctx, n)
	if err != nil {
		t.Fatalf("floor, %d devices: connect: %v", n, err)
	}
	if failed != 0 {
		t.Fatalf("floor, %d devices: %d did not connect; first: %s", n, failed, firstErr)
	}
	return l
}

// round lets every device send back to back for d, as hubLoad.round does.
func (l *floorLoad) round(ctx context.Context, d time.Duration) {
	start := time.Now()
	before := markCPU(l.server.pid(), l.clientPIDs)
	acked, sendErrs, firstErr, err := l.clients.send(ctx, l.n, start.Add(d))
	if err != nil {
		l.t.Fatalf("floor telemetry: %v", err)
	}
	took := time.Since(start)
	after := markCPU(l.server.pid(), l.clientPIDs)
	total := 0
	for _, a := range acked {
		total += a
	}
	l.add(total, took, before, after, sendErrs, firstErr)
}

// figures closes the clients and returns the load's figures (hubCPU is
// the floor server's).
func (l *floorLoad) figures(ctx context.Context) loadFigures {
	if _, err := l.clients.close(ctx); err != nil {
		l.t.Errorf("floor, %d devices: closing the clients: %v", l.n, err)
	}
	if l.sendErrN != 0 {
		l.t.Errorf("floor, %d devices: %d devices stopped on a send error; first: %s", l.n, l.sendErrN, l.firstSendErr)
	}
	f := loadFigures{devices: l.n, online: l.n, took: l.took, acked: l.messages, roundRates: l.roundRates, hubCPU: -1, clientCPU: -1, rssPerDevice: -1}
	if l.cpuErr == nil {
		f.hubCPU, f.clientCPU = l.serverCPU.Seconds(), l.clientCPU.Seconds()
	}
	return f
}

// compareFloor puts hubsim's large/small ratios next to the floor's from
// the same run.
func compareFloor(hubSmall, hubLarge, floorSmall, floorLarge loadFigures) *table {
	tb := &table{title: fmt.Sprintf("porthole hub load: hubsim against the floor (a minimal Go MQTT/TLS server), %d vs %d devices, same run, rounds alternating", hubSmall.devices, hubLarge.devices)}
	perMsg := func(cpu float64, acked int) string {
		if cpu < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f µs", cpu/float64(acked)*1e6)
	}
	for _, r := range []struct {
		name string
		f    loadFigures
	}{{"hubsim", hubSmall}, {"hubsim", hubLarge}, {"floor", floorSmall}, {"floor", floorLarge}} {
		tb.addf(fmt.Sprintf("%s, %d devices", r.name, r.f.devices), "QoS 1 msg/s", "median round %.0f%s; server CPU per message %s, clients CPU per message %s",
			r.f.median(), roundNote(r.f.roundRates), perMsg(r.f.hubCPU, r.f.acked), perMsg(r.f.clientCPU, r.f.acked))
	}
	hubRatio := hubLarge.median() / hubSmall.median()
	floorRatio := floorLarge.median() / floorSmall.median()
	tb.addf("msg/s ratio, hubsim", "target ≥ 1.00", "%.2f (%d / %d devices)", hubRatio, hubLarge.devices, hubSmall.devices)
	tb.addf("msg/s ratio, floor", "the machine's", "%.2f (%d / %d devices)", floorRatio, floorLarge.devices, floorSmall.devices)
	tb.addf("hubsim's ratio / the floor's", "", "%.2f (1.00: hubsim loses no more than the floor does at %d devices)", hubRatio/floorRatio, hubLarge.devices)
	if hubSmall.hubCPU > 0 && hubLarge.hubCPU > 0 && floorSmall.hubCPU > 0 && floorLarge.hubCPU > 0 {
		eff := func(f loadFigures) float64 { return float64(f.acked) / f.hubCPU }
		tb.addf("msg per server CPU-second ratio", "hubsim / floor", "%.2f / %.2f (%d / %d devices)", eff(hubLarge)/eff(hubSmall), eff(floorLarge)/eff(floorSmall), hubLarge.devices, hubSmall.devices)
	}
	return tb
}

// TestFloorFleet runs the floor server process and the client workers
// against it with a few devices: every device connects, has messages
// acknowledged, and closes. It runs in plain go test, so the floor the
// benchmark compares hubsim with is checked to be a working MQTT server for
// the same clients.
func TestFloorFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx := benchContext(t, 2*time.Minute)
	l := startFloorLoad(t, ctx, 3, 2)
	l.round(ctx, 300*time.Millisecond)
	l.round(ctx, 300*time.Millisecond)
	f := l.figures(ctx)
	if f.acked < 2*3 || len(f.roundRates) != 2 {
		t.Fatalf("floor: %d messages acknowledged in %d rounds; want at least one per device per round", f.acked, len(f.roundRates))
	}
	if l.sendErrN != 0 {
		t.Fatalf("floor: %d send errors; first: %s", l.sendErrN, l.firstSendErr)
	}
}

// TestFloorReply pins the floor's answers, so that it stays a correct (if
// minimal) MQTT 3.1.1 server.
func TestFloorReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  byte
		body []byte
		want []byte
		ok   bool
	}{
		{"connect", 0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60}, []byte{0x20, 2, 0, 0}, true},
		{"publish qos1", 0x32, []byte{0, 1, 't', 0x12, 0x34, 'x'}, []byte{0x40, 2, 0x12, 0x34}, true},
		{"publish qos0", 0x30, []byte{0, 1, 't', 'x'}, nil, true},
		{"publish qos1 short", 0x32, []byte{0, 5, 't'}, nil, false},
		{"subscribe two", 0x82, []byte{0, 7, 0, 1, 'a', 1, 0, 1, 'b', 0}, []byte{0x90, 4, 0, 7, 1, 0}, true},
		{"subscribe qos2 granted 1", 0x82, []byte{0, 7, 0, 1, 'a', 2}, []byte{0x90, 3, 0, 7, 1}, true},
		{"subscribe truncated", 0x82, []byte{0, 7, 0, 9, 'a'}, nil, false},
		{"subscribe empty", 0x82, []byte{0, 7}, nil, false},
		{"unsubscribe", 0xA2, []byte{0, 9, 0, 1, 'a'}, []byte{0xB0, 2, 0, 9}, true},
		{"pingreq", 0xC0, nil, []byte{0xD0, 0}, true},
		{"disconnect", 0xE0, nil, nil, false},
	} {
		got, ok := floorReply(tc.hdr, tc.body)
		if ok != tc.ok || string(got) != string(tc.want) {
			t.Errorf("%s: floorReply = % x, %v; want % x, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
