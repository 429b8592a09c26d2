package broker

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// errCleanDisconnect is the close cause of a client that sent DISCONNECT; it
// is reported as nil.
var errCleanDisconnect = errors.New("broker: client sent DISCONNECT")

// Buffer sizes. At fleet scale every byte per connection counts: the read
// buffer only batches the header bytes and small bodies (TLS and WebSocket
// connections buffer a whole record or frame underneath, and a large body
// is read straight into its own slice) and exists only while a packet is
// being read: an idle client waits for the first byte of its next packet
// without one (client.next), takes one from readBuffers for the rest and
// gives it back once nothing is left in it. The write buffer exists only
// while a writer runs: it comes from writeBuffers and goes back after each
// flush. So an idle client holds neither.
const (
	readBufferSize  = 512
	writeBufferSize = 8 << 10
)

// writeBuffers holds the write buffers of the clients not writing now.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

// readBuffers holds the read buffers of the clients not reading a packet now.
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// subscription is one granted topic filter.
type subscription struct {
	filter string
	asked  byte // the QoS the client asked for, offered again on resume
	qos    byte // the QoS granted
}

// client is one connection. Its reader runs in the goroutine of serve. It
// writes from a writer goroutine (writeRun) that exists only while packets
// are queued: the first send after an idle period starts it and it exits
// when the queue is empty, so an idle client costs no goroutine stack and
// no write buffer. The reader waits for it in finish. client implements
// Outbound.
type client struct {
	b         *Broker
	conn      net.Conn
	transport string
	br        *bufio.Reader   // owned by the reader; nil while nothing is buffered (client.next)
	first     [1]byte         // the first byte of the next packet, read without br; owned by the reader
	haveFirst bool            // first holds a byte not yet decoded; owned by the reader
	ctxDone   <-chan struct{} // Done of the serving context; set before the client is registered

	// Set by the reader during CONNECT, read-only afterwards.
	id        string
	clean     bool          // CONNECT clean session flag
	keepalive time.Duration // 1.5 × CONNECT keepalive; 0 = none
	sess      Session       // nil until Personality.Connect succeeded
	key       clientKey     // guarded by b.mu once keyed
	keyed     bool          // guarded by b.mu

	done    chan struct{}  // closed by closeWith
	writers sync.WaitGroup // the writer goroutine, if one runs; Add under mu while not closed
	exited  chan struct{}  // closed after Session.Disconnected returned

	mu       sync.Mutex
	closed   bool                  // guarded by mu
	cause    error                 // first close cause; guarded by mu
	subs     []subscription        // guarded by mu
	queue    [][]byte              // encoded packets to write, in order; guarded by mu
	queued   int                   // bytes in queue; guarded by mu
	spare    [][]byte              // the previous batch's slice, reused; guarded by mu
	canWrite bool                  // set once CONNECT is done: sends start a writer; guarded by mu
	writing  bool                  // a writer goroutine runs; guarded by mu
	inflight map[uint16]func(bool) // QoS 1 packet ids awaiting PUBACK → PublishAcked callback (or nil); guarded by mu
	lastID   uint16                // last packet id handed out; guarded by mu
}

func newClient(b *Broker, conn net.Conn, transport string) *client {
	return &client{
		b:         b,
		conn:      conn,
		transport: transport,
		done:      make(chan struct{}),
		exited:    make(chan struct{}),
		inflight:  make(map[uint16]func(bool)),
	}
}

// closeWith closes the connection once, recording why, and returns the first
// recorded cause. Safe from any goroutine; never call with c.mu held.
func (c *client) closeWith(cause error) error {
	c.mu.Lock()
	if c.closed {
		first := c.cause
		c.mu.Unlock()
		return first
	}
	c.closed = true
	c.cause = cause
	c.queue, c.queued = nil, 0
	close(c.done)
	c.mu.Unlock()
	abort(c.conn)
	return cause
}

// abort closes the transport under conn at once, without the polite
// TLS close_notify or WebSocket close frame that Close would try to write
// (and could wait seconds for when the client is stalled). It unblocks the
// reader and the writer; finish then calls conn.Close to release the rest.
func abort(conn net.Conn) {
	switch x := conn.(type) {
	case *tls.Conn:
		_ = x.NetConn().Close()
	case *wsConn:
		x.abort()
	default:
		_ = conn.Close()
	}
}

// run handles TLS, CONNECT and then the packets of one client until it is
// gone. The returned error is a candidate close cause (closeWith keeps the
// first).
//
// The TLS handshake and CONNECT (authentication, the personality's
// bookkeeping, a database write) need deep stacks; a goroutine's stack
// keeps its size long after, and the reader lives as long as the
// connection. So they run in a goroutine of their own that ends before the
// reader starts: the reader keeps a small stack (at 10,000 connections the
// difference is tens of MiB).
//
// Before that the connection waits for its place among the connections
// connecting (Config.MaxConnecting), which it gives back when CONNECT is
// done or after Config.ConnectingHold, whichever comes first.
func (c *client) run(tlsState *tls.ConnectionState) error {
	release, err := c.waitConnecting()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { // owned by run, which waits for it right here
		defer close(done)
		err = c.connect(tlsState)
	}()
	<-done
	release()
	if err != nil {
		return err
	}
	return c.readLoop()
}

// waitConnecting waits for a place among the connections connecting; the
// returned release gives it back (idempotent; a timer gives it back after
// Config.ConnectingHold). It fails when the client is closed meanwhile.
func (c *client) waitConnecting() (release func(), err error) {
	b := c.b
	select {
	case b.connecting <- struct{}{}:
	default:
		b.connectWaiting.Add(1)
		select {
		case b.connecting <- struct{}{}:
			b.connectWaiting.Add(-1)
		case <-c.done:
			b.connectWaiting.Add(-1)
			return nil, ErrClosed
		}
	}
	var once sync.Once
	give := func() { once.Do(func() { <-b.connecting }) }
	t := time.AfterFunc(b.cfg.ConnectingHold, give)
	return func() {
		t.Stop()
		give()
	}, nil
}

// connect does the TLS handshake and CONNECT and starts writing; run reads
// the client's packets afterwards.
func (c *client) connect(tlsState *tls.ConnectionState) error {
	cfg := &c.b.cfg
	_ = c.conn.SetDeadline(time.Now().Add(cfg.ConnectTimeout))
	if tc, ok := c.conn.(*tls.Conn); ok && tlsState == nil {
		// The deadline bounds the handshake; the serving context, through
		// the broker's watch, aborts it. HandshakeContext would start a
		// goroutine per connection to watch the context.
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("broker: TLS handshake: %w", err)
		}
		cs := tc.ConnectionState()
		tlsState = &cs
	}

	pk, err := c.next()
	if err != nil {
		if errors.Is(err, errUnsupportedVersion) {
			c.refuse(connackBadProtocol)
			return fmt.Errorf("%w: %w", ErrConnectRefused, err)
		}
		return fmt.Errorf("broker: reading CONNECT: %w", err)
	}
	if pk.FixedHeader.Type != packets.Connect {
		return fmt.Errorf("%w: first packet is %s, not CONNECT", ErrProtocol, packetName(pk.FixedHeader.Type))
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return fmt.Errorf("%w: CONNECT: %s", ErrProtocol, code.Reason)
	}
	cp := &pk.Connect
	c.id = cp.ClientIdentifier
	c.clean = cp.Clean
	username := string(cp.Username)
	log := c.b.log.With("client", c.id, "transport", c.transport, "remote", c.conn.RemoteAddr().String())
	if c.id == "" {
		// IoT Hub and DPS both require a client id (device or registration id).
		c.refuse(connackBadIdentifier)
		log.Info("mqtt connect refused", "code", connackBadIdentifier, "err", "empty client id")
		return fmt.Errorf("%w: empty client id", ErrConnectRefused)
	}
	idx, p := c.b.route(username)
	if p == nil {
		c.refuse(connackBadCredentials)
		log.Info("mqtt connect refused", "code", connackBadCredentials, "username", username, "err", "no personality claims the username")
		return fmt.Errorf("%w: no personality claims username %q", ErrConnectRefused, username)
	}
	info := ConnectInfo{
		ClientID:     c.id,
		Username:     username,
		Password:     cp.Password,
		CleanSession: cp.Clean,
		Keepalive:    cp.Keepalive,
		TLS:          tlsState,
		Remote:       c.conn.RemoteAddr().String(),
		Transport:    c.transport,
		LocalAddr:    c.conn.LocalAddr().String(),
	}
	sess, err := p.Connect(info, c)
	if err == nil && sess == nil {
		err = errors.New("personality returned no session")
	}
	if err != nil {
		code := connackCode(err)
		c.refuse(code)
		log.Info("mqtt connect refused", "code", code, "username", username, "err", err)
		return fmt.Errorf("%w: %w", ErrConnectRefused, err)
	}
	c.sess = sess
	c.keepalive = time.Duration(cp.Keepalive) * time.Second * 3 / 2

	key := clientKey{idx, realmOf(username), c.id}
	old, ok := c.b.claim(key, c)
	if !ok {
		return ErrBrokerClosed
	}
	if old != nil {
		log.Info("mqtt client id taken over")
		old.closeWith(ErrTakenOver)
		<-old.exited // old has stored its session by now (Broker.forget)
	}
	stored, present := c.b.resume(key, c.clean)

	// CONNACK is the first thing queued: no subscription exists yet, so no
	// Outbound.Publish can have queued anything before it. The writer starts
	// only after the stored subscriptions are restored, so on the wire the
	// CONNACK follows their restoration, and whatever a Session.Subscribe
	// publishes follows the CONNACK (§3.2.2.2: session present is 1 only
	// when a stored session is resumed).
	if err := c.send(connackPacket(connackAccepted, present)); err != nil {
		return err
	}
	restored := c.restore(stored)
	_ = c.conn.SetDeadline(time.Time{})
	c.mu.Lock()
	c.canWrite = true
	c.startWriterLocked()
	c.mu.Unlock()
	log.Info("mqtt client connected", "keepalive", cp.Keepalive, "clean", cp.Clean,
		"session_present", present, "restored", restored)
	return nil
}

// restore offers the subscriptions of a resumed session to the new Session,
// one Session.Subscribe each, as if the client had subscribed again, and
// makes the granted ones live; a refused filter is dropped (the client is not
// told: MQTT 3.1.1 has no packet for it). The QoS stays at most what the
// client was granted before. It returns how many were restored.
func (c *client) restore(stored []subscription) int {
	n := 0
	for _, s := range stored {
		// Live while the session decides, as in handleSubscribe.
		c.setSub(s.filter, s.asked, s.qos)
		granted, ok := c.sess.Subscribe(s.filter, s.asked)
		if !ok {
			c.removeSub(s.filter)
			c.b.log.Info("mqtt stored subscription refused; dropped", "client", c.id, "filter", s.filter)
			continue
		}
		c.setSub(s.filter, s.asked, min(granted, s.qos))
		n++
	}
	return n
}

// refuse writes a CONNACK with a non-zero return code; the caller then
// closes the connection (MQTT 3.1.1 §3.2.2.3).
func (c *client) refuse(code byte) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	_, _ = c.conn.Write(connackPacket(code, false))
}

// next reads the client's next packet: waitPacket, then readRestInto.
func (c *client) next() (packets.Packet, error) {
	var pk packets.Packet
	if err := c.waitPacket(); err != nil {
		return pk, err
	}
	err := c.readRestInto(&pk)
	return pk, err
}

// waitPacket waits until the client's next packet begins. A client with
// nothing buffered waits for the packet's first byte with a one-byte read
// straight from the connection (TLS and WebSocket buffer underneath) and
// only then takes a read buffer for the rest; readRest gives it back when
// the packet leaves nothing buffered in it. So an idle client holds no read
// buffer, and its goroutine waits in this small frame, not in one holding
// a packets.Packet (800 bytes, several copies deep): the garbage collector
// shrinks an idle reader's stack only while it uses under a quarter of it.
func (c *client) waitPacket() error {
	if c.br != nil {
		return nil // the packet is (at least partly) buffered
	}
	for { // not io.ReadFull: two frames more on every idle reader's stack
		n, err := c.conn.Read(c.first[:])
		if n == 1 {
			break // an error with the byte comes again from the next read
		}
		if err != nil {
			return err
		}
	}
	c.takeReader()
	return nil
}

// takeReader gives the client a read buffer after waitPacket read the
// packet's first byte. Not inlined: its frame is not on the idle wait's.
//
//go:noinline
func (c *client) takeReader() {
	c.br = readBuffers.Get().(*bufio.Reader)
	c.br.Reset(c.conn)
	c.b.readBuffers.Add(1)
	c.haveFirst = true
}

// readRestInto reads the packet waitPacket saw begin into pk (zero on
// entry).
func (c *client) readRestInto(pk *packets.Packet) error {
	limit := c.b.cfg.MaxPacketSize
	var err error
	if c.haveFirst {
		c.haveFirst = false
		err = readPacketInto(pk, c.first[0], c.br, limit)
	} else {
		var hb byte
		if hb, err = c.br.ReadByte(); err == nil {
			err = readPacketInto(pk, hb, c.br, limit)
		}
	}
	c.releaseReader(false)
	return err
}

// putPacket clears pk and puts it back in packetPool. The handlers keep
// its fields' memory (topic, payload, filters), never pk itself.
func putPacket(pk *packets.Packet) {
	*pk = packets.Packet{}
	packetPool.Put(pk)
}

// packetPool holds the packets.Packet structs readers decode into: 800
// bytes each, so by pointer from the heap, not on every reader's stack.
var packetPool = sync.Pool{New: func() any { return new(packets.Packet) }}

// releaseReader gives the read buffer back when nothing is left in it, or
// in any case when all is true (the reader is done).
func (c *client) releaseReader(all bool) {
	if c.br == nil || (!all && c.br.Buffered() > 0) {
		return
	}
	c.br.Reset(nil)
	readBuffers.Put(c.br)
	c.br = nil
	c.b.readBuffers.Add(-1)
}

// finish runs once the reader is done: it stops the writer, forgets the
// client, tells the session, and returns what ServeConn reports.
func (c *client) finish(runErr error) error {
	c.releaseReader(true)
	cause := c.closeWith(runErr)
	// closeWith set closed under mu, so no writer can be added after this.
	c.writers.Wait()
	_ = c.conn.Close()
	c.b.forget(c)
	// PublishAcked callbacks whose PUBACK never came: no more can be added
	// (the client is closed) and none can fire (the reader is here).
	c.mu.Lock()
	var unacked []func(bool)
	for _, acked := range c.inflight {
		if acked != nil {
			unacked = append(unacked, acked)
		}
	}
	clear(c.inflight)
	c.mu.Unlock()
	for _, acked := range unacked {
		acked(false)
	}
	reported := cause
	if errors.Is(cause, errCleanDisconnect) {
		reported = nil
	}
	switch {
	case c.sess != nil:
		c.sess.Disconnected(reported)
		c.b.log.Info("mqtt client disconnected", "client", c.id, "transport", c.transport, "err", reported)
	case !errors.Is(cause, ErrConnectRefused):
		// TLS trust problems and garbage end here, before any CONNECT.
		c.b.log.Info("mqtt connection ended before CONNECT", "transport", c.transport,
			"remote", c.conn.RemoteAddr().String(), "err", cause)
	}
	close(c.exited)
	return reported
}

// readLoop handles the packets of a connected client.
func (c *client) readLoop() error {
	for {
		if c.keepalive > 0 {
			_ = c.conn.SetReadDeadline(time.Now().Add(c.keepalive))
		}
		// The idle wait happens here, in this frame, with no packet in it
		// (see waitPacket); handleNext holds the packet.
		err := c.waitPacket()
		if err == nil {
			err = c.handleNext()
		}
		if err != nil {
			var stop stopError
			if errors.As(err, &stop) {
				return stop.err // ended by the packet's handling, as it is
			}
			var ne net.Error
			if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
				return ErrKeepaliveTimeout
			}
			return fmt.Errorf("broker: read: %w", err)
		}
	}
}

// stopError carries an error with which handleNext ends the connection
// for a reason other than reading: readLoop returns it as it is (read
// errors become ErrKeepaliveTimeout or get "broker: read:").
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// handleNext reads the rest of the packet waitPacket saw begin and handles
// it. A read error is returned as it is; an error that ends the connection
// for another reason comes wrapped in stopError.
func (c *client) handleNext() error {
	pk := packetPool.Get().(*packets.Packet)
	defer putPacket(pk)
	if err := c.readRestInto(pk); err != nil {
		return err
	}
	return c.dispatch(pk)
}

// dispatch handles one packet read by handleNext. Not inlined: its frame is
// not under the read.
//
//go:noinline
func (c *client) dispatch(pk *packets.Packet) error {
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = c.handlePublish(pk)
	case packets.Puback:
		c.mu.Lock()
		acked := c.inflight[pk.PacketID]
		delete(c.inflight, pk.PacketID)
		c.mu.Unlock()
		if acked != nil {
			acked(true)
		}
	case packets.Subscribe:
		err = c.handleSubscribe(pk)
	case packets.Unsubscribe:
		err = c.handleUnsubscribe(pk)
	case packets.Pingreq:
		err = c.send(pingrespPacket())
	case packets.Disconnect:
		err = errCleanDisconnect
	case packets.Connect:
		err = fmt.Errorf("%w: second CONNECT", ErrProtocol)
	default: // PUBREC, PUBREL, PUBCOMP: QoS 2 is not supported
		err = fmt.Errorf("%w: %s (QoS 2 is not supported)", ErrProtocol, packetName(pk.FixedHeader.Type))
	}
	if err != nil {
		return stopError{err}
	}
	return nil
}

func (c *client) handlePublish(pk *packets.Packet) error {
	qos := pk.FixedHeader.Qos
	if qos > 1 {
		return fmt.Errorf("%w: PUBLISH at QoS %d (QoS 2 is not supported)", ErrProtocol, qos)
	}
	if code := pk.PublishValidate(0); code != packets.CodeSuccess || !validTopicName(pk.TopicName) {
		return fmt.Errorf("%w: PUBLISH topic %q: %s", ErrProtocol, pk.TopicName, code.Reason)
	}
	if err := c.sess.Publish(pk.TopicName, pk.Payload, qos); err != nil {
		if errors.Is(err, ErrNotAuthorized) {
			c.b.log.Info("mqtt publish refused; disconnecting", "client", c.id, "topic", pk.TopicName, "err", err)
			return fmt.Errorf("broker: publish to %q: %w", pk.TopicName, err)
		}
		c.b.log.Info("mqtt publish refused", "client", c.id, "topic", pk.TopicName, "err", err)
	}
	if qos == 1 {
		return c.send(pubackPacket(pk.PacketID))
	}
	return nil
}

func (c *client) handleSubscribe(pk *packets.Packet) error {
	if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
		return fmt.Errorf("%w: SUBSCRIBE: %s", ErrProtocol, code.Reason)
	}
	codes := make([]byte, len(pk.Filters))
	for i, f := range pk.Filters {
		if !validFilter(f.Filter) {
			codes[i] = subackFailure
			continue
		}
		// The filter is live while the session decides, so Session.Subscribe
		// may already publish to it (MQTT 3.1.1 §3.8.4 lets a server send
		// matching PUBLISHes before the SUBACK); a refusal undoes it.
		prev, had := c.setSub(f.Filter, f.Qos, min(f.Qos, maxGrantedQoS))
		granted, ok := c.sess.Subscribe(f.Filter, f.Qos)
		if !ok {
			c.restoreSub(prev, had)
			codes[i] = subackFailure
			continue
		}
		granted = min(granted, f.Qos, maxGrantedQoS)
		c.setSub(f.Filter, f.Qos, granted)
		codes[i] = granted
	}
	return c.send(subackPacket(pk.PacketID, codes))
}

func (c *client) handleUnsubscribe(pk *packets.Packet) error {
	if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
		return fmt.Errorf("%w: UNSUBSCRIBE: %s", ErrProtocol, code.Reason)
	}
	for _, f := range pk.Filters {
		c.removeSub(f.Filter)
		c.sess.Unsubscribe(f.Filter)
	}
	return c.send(unsubackPacket(pk.PacketID))
}

// setSub records a granted filter, replacing an identical one (§3.8.4), and
// returns what it replaced.
func (c *client) setSub(filter string, asked, qos byte) (prev subscription, had bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.subs {
		if c.subs[i].filter == filter {
			prev = c.subs[i]
			c.subs[i].asked, c.subs[i].qos = asked, qos
			return prev, true
		}
	}
	c.subs = append(c.subs, subscription{filter: filter, asked: asked, qos: qos})
	return subscription{filter: filter}, false
}

// restoreSub undoes setSub after the session refused a filter.
func (c *client) restoreSub(prev subscription, had bool) {
	if had {
		c.setSub(prev.filter, prev.asked, prev.qos)
		return
	}
	c.removeSub(prev.filter)
}

func (c *client) removeSub(filter string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.subs {
		if s.filter == filter {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			return
		}
	}
}

// grantedLocked returns the highest QoS granted by a filter matching topic.
func (c *client) grantedLocked(topic string) (qos byte, ok bool) {
	for _, s := range c.subs {
		if matchTopic(s.filter, topic) {
			ok = true
			qos = max(qos, s.qos)
		}
	}
	return qos, ok
}

// send queues one encoded packet behind everything queued before it.
func (c *client) send(pkt []byte) error {
	c.mu.Lock()
	err := c.enqueueLocked(pkt)
	c.mu.Unlock()
	return c.afterEnqueue(err)
}

// enqueueLocked appends pkt to the queue, or fails when the client is closed
// or its backlog would exceed the limit.
func (c *client) enqueueLocked(pkt []byte) error {
	if c.closed {
		return ErrClosed
	}
	if c.queued+len(pkt) > c.b.cfg.MaxQueuedBytes {
		return ErrSlowConsumer
	}
	c.queue = append(c.queue, pkt)
	c.queued += len(pkt)
	return nil
}

// afterEnqueue starts a writer if none runs or, on overflow, drops the client. Call
// without c.mu.
func (c *client) afterEnqueue(err error) error {
	switch {
	case err == nil:
		c.mu.Lock()
		c.startWriterLocked()
		c.mu.Unlock()
		return nil
	case errors.Is(err, ErrSlowConsumer):
		c.closeWith(ErrSlowConsumer)
		return fmt.Errorf("%w: %w", ErrClosed, ErrSlowConsumer)
	default:
		return err
	}
}

// startWriterLocked starts a writer when packets are queued, writing is
// allowed and none runs. Call with c.mu held.
func (c *client) startWriterLocked() {
	if c.closed || !c.canWrite || c.writing || len(c.queue) == 0 {
		return
	}
	c.writing = true
	c.writers.Add(1)
	go c.writeRun() // owned by the client: finish waits for c.writers
}

// writeRun writes queued packets in order, batching whatever accumulated
// while the previous batch was written, and returns when the queue is empty
// or the client closed.
func (c *client) writeRun() {
	defer c.writers.Done()
	bw := writeBuffers.Get().(*bufio.Writer)
	bw.Reset(c.conn)
	defer func() {
		bw.Reset(nil)
		writeBuffers.Put(bw)
	}()
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.queued = 0
		c.mu.Unlock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
		for _, p := range batch {
			_, _ = bw.Write(p) // a write error sticks and is returned by Flush
		}
		err := bw.Flush()
		clear(batch)
		c.mu.Lock()
		if c.spare == nil {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
		if err != nil {
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			c.closeWith(fmt.Errorf("broker: write: %w", err))
			return
		}
	}
}

// nextIDLocked returns a packet id not awaiting PUBACK.
func (c *client) nextIDLocked() (uint16, error) {
	for range 1 << 16 {
		c.lastID++
		if c.lastID == 0 {
			c.lastID = 1
		}
		if _, busy := c.inflight[c.lastID]; !busy {
			return c.lastID, nil
		}
	}
	return 0, ErrInflightFull
}

// Publish implements Outbound.
func (c *client) Publish(topic string, payload []byte, qos byte) error {
	_, err := c.publish(topic, payload, qos, nil)
	return err
}

// PublishAcked implements AckOutbound.
func (c *client) PublishAcked(topic string, payload []byte, acked func(ok bool)) error {
	if acked == nil {
		return errors.New("broker: PublishAcked without a callback")
	}
	qos, err := c.publish(topic, payload, 1, acked)
	if err == nil && qos == 0 {
		acked(true) // granted QoS 0: there will be no PUBACK
	}
	return err
}

// publish queues a PUBLISH at min(qos, granted) and returns that QoS. At QoS
// 1 it records acked (may be nil) under the packet id.
func (c *client) publish(topic string, payload []byte, qos byte, acked func(bool)) (byte, error) {
	if !validTopicName(topic) || len(topic) > maxTopicLength {
		return 0, fmt.Errorf("broker: invalid topic name %q", topic)
	}
	if qos > 2 {
		return 0, fmt.Errorf("broker: invalid QoS %d", qos)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	granted, ok := c.grantedLocked(topic)
	if !ok {
		c.mu.Unlock()
		return 0, ErrNotSubscribed
	}
	qos = min(qos, granted)
	var id uint16
	if qos > 0 {
		var err error
		if id, err = c.nextIDLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	pkt, err := publishPacket(topic, payload, qos, id)
	if err != nil {
		c.mu.Unlock()
		return 0, fmt.Errorf("broker: encoding PUBLISH: %w", err)
	}
	err = c.enqueueLocked(pkt)
	if err == nil && qos > 0 {
		c.inflight[id] = acked
	}
	c.mu.Unlock()
	return qos, c.afterEnqueue(err)
}

// Subscribed implements Outbound.
func (c *client) Subscribed(topic string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	_, ok := c.grantedLocked(topic)
	return ok
}

// Close implements Outbound.
func (c *client) Close() {
	c.closeWith(ErrServerDisconnect)
}
