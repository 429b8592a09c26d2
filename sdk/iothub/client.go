package iothub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/porthole-iot/porthole/sdk/internal/topic"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// Client is a connected IoT Hub device (or module) client. Create it with
// Dial; it reconnects by itself until Close or a permanent failure (see
// Done and Err). All methods are safe for concurrent use.
//
// Handlers (OnMethod, OnDesired, OnC2D, OnStreamRequest,
// OnConnectionState) may be registered at any time after Dial; the client
// subscribes to the topics a handler needs on the current connection and on
// every reconnect. Handlers run on goroutines owned by the client and must
// not call Close (it waits for them); they may call every other method.
type Client struct {
	s *settings
	d dialer

	// ctx is the client's lifetime: cancelled by finish (Close or a
	// permanent failure). Handler contexts derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed by finish

	// wg counts every goroutine the client owns: run, the three queue
	// runners, and per-request method and stream handler goroutines.
	// Close waits for it. Add only under mu while err == nil.
	wg sync.WaitGroup

	rid atomic.Uint64 // request id counter ($rid), decimal

	// resub wakes run when handlers changed (cap 1).
	resub chan struct{}

	desiredQ *queue // desired-property deliveries, in order
	c2dQ     *queue // cloud-to-device deliveries, in order
	stateQ   *queue // connection-state notifications, in order

	mu sync.Mutex
	// Guarded by mu:
	err     error                        // why done closed; nil while running
	sess    *session                     // the connected session; nil while reconnecting
	changed chan struct{}                // closed and replaced whenever sess, its subscriptions or the handlers change
	pending map[string]chan twinResponse // twin requests by $rid
	methods map[string]MethodHandler
	desired func(patch map[string]any, version int)
	c2d     func(Message)
	streams func(ctx context.Context, req *StreamRequest)
	state   func(connected bool, err error)
	// desiredKnown/desiredDoc: the desired document as the application has
	// seen it (through GetTwin and delivered patches); version 0 = never.
	desiredKnown int
	desiredDoc   map[string]any
}

// session is one MQTT connection (one paho client).
type session struct {
	pc      mqtt.Client
	started time.Time // Clock time of the CONNACK
	renewAt time.Duration
	lost    chan struct{} // closed by end
	once    sync.Once
	cause   error           // why lost closed; written once before close(lost)
	subs    map[string]bool // active filters; guarded by Client.mu

	// pubMu orders publishes before the disconnect: paho's Publish blocks
	// for its write timeout when it races with Disconnect, so drop waits
	// for publishes in progress (which return at once on a live
	// connection) and later ones fail fast.
	pubMu   sync.RWMutex
	closing bool // guarded by pubMu
}

// publish sends on the session unless it is being dropped.
func (s *session) publish(topic string, qos byte, payload []byte) mqtt.Token {
	s.pubMu.RLock()
	defer s.pubMu.RUnlock()
	if s.closing {
		return failedToken{err: mqtt.ErrNotConnected}
	}
	return s.pc.Publish(topic, qos, false, payload)
}

// failedToken is a paho token that completed with an error.
type failedToken struct{ err error }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (failedToken) Wait() bool                     { return true }
func (failedToken) WaitTimeout(time.Duration) bool { return true }
func (failedToken) Done() <-chan struct{}          { return closedChan }
func (t failedToken) Error() error                 { return t.err }

func (s *session) end(err error) {
	s.once.Do(func() {
		s.cause = err
		close(s.lost)
	})
}

// errTokenRenewal ends a session whose SAS token is due for renewal.
var errTokenRenewal = errors.New("iothub: renewing SAS token")

// Dial connects to the hub once and returns a running client. A CONNACK
// refusal returns a *ConnectError; other failures are transport errors that
// sdk/retry classifies (so a caller can retry Dial with retry.Do). ctx bounds
// only the first connection; the client lives until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &Client{
		s:        s,
		d:        dialer{s: s},
		done:     make(chan struct{}),
		resub:    make(chan struct{}, 1),
		desiredQ: newQueue(),
		c2dQ:     newQueue(),
		stateQ:   newQueue(),
		changed:  make(chan struct{}),
		pending:  make(map[string]chan twinResponse),
		methods:  make(map[string]MethodHandler),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	sess, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	if err := c.setup(ctx, sess); err != nil {
		c.drop(sess, err)
		c.cancel()
		return nil, err
	}
	c.s.log.Info("connected", "host", s.HostName, "transport", s.Transport)
	c.wg.Add(4)
	go c.run(sess)
	for _, q := range []*queue{c.desiredQ, c.c2dQ, c.stateQ} {
		go func() {
			defer c.wg.Done()
			q.run(c.ctx)
		}()
	}
	return c, nil
}

// Close disconnects and stops the client, waiting for every goroutine it
// owns, handlers included. It is idempotent and returns nil. Do not call it
// from a handler.
func (c *Client) Close() error {
	c.finish(ErrClosed)
	c.wg.Wait()
	return nil
}

// Done is closed when the client has stopped for good: after Close, or after
// a permanent failure while reconnecting (the hub refused the credentials, or
// Config.Retry gave up). Err says which.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client runs, ErrClosed after Close, and otherwise
// the permanent failure that stopped it: a *ConnectError (errors.As) when the
// hub refused the device — time to provision again — or a
// *retry.GiveUpError.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// OnConnectionState registers h, called (in order, on a client goroutine)
// with true when a reconnect succeeded and with false and the reason when the
// connection dropped. It is not called for the first connection (Dial) nor
// after the client stopped.
func (c *Client) OnConnectionState(h func(connected bool, err error)) {
	c.mu.Lock()
	c.state = h
	c.mu.Unlock()
}

// WaitSubscribed blocks until the client is connected and subscribed to
// every topic the registered handlers need, or ctx ends, or the client stops.
// Handlers registered after Dial are subscribed asynchronously; call this
// before relying on them (for example before reporting "ready").
func (c *Client) WaitSubscribed(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.stoppedLocked()
			c.mu.Unlock()
			return err
		}
		ok := c.sess != nil
		if ok {
			for f := range c.wantedLocked() {
				if !c.sess.subs[f] {
					ok = false
					break
				}
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// finish stops the client with err (first call wins).
func (c *Client) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.done)
	c.cancel()
	c.broadcastLocked()
}

func (c *Client) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// stoppedLocked is the error for calls made after the client stopped.
func (c *Client) stoppedLocked() error {
	if errors.Is(c.err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, c.err)
}

// current returns the connected session, ErrNotConnected while
// reconnecting, or the stopped error.
func (c *Client) current() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.stoppedLocked()
	}
	if c.sess == nil {
		return nil, ErrNotConnected
	}
	return c.sess, nil
}

// waitConnected returns the connected session, waiting for a reconnect.
func (c *Client) waitConnected(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.stoppedLocked()
			c.mu.Unlock()
			return nil, err
		}
		s, ch := c.sess, c.changed
		c.mu.Unlock()
		if s != nil {
			select {
			case <-s.lost: // run has not dropped it yet; wait for that
			default:
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// goLocked starts f on a goroutine owned by the client, unless the client
// has stopped. Caller holds mu.
func (c *Client) goLocked(f func()) bool {
	if c.err != nil {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// handlersChanged asks run to subscribe to what the handlers need.
func (c *Client) handlersChanged() {
	c.broadcastLocked()
	select {
	case c.resub <- struct{}{}:
	default:
	}
}

// wantedLocked is the set of filters the registered handlers need, with
// their QoS. Caller holds mu.
func (c *Client) wantedLocked() map[string]byte {
	w := map[string]byte{topic.SubTwinResponses: qosRequests}
	if c.desired != nil {
		w[topic.SubTwinDesired] = qosRequests
	}
	if len(c.methods) > 0 {
		w[topic.SubMethods] = qosRequests
	}
	if c.c2d != nil && c.s.ModuleID == "" { // modules have no C2D queue
		w[topic.C2DSubscription(c.s.DeviceID)] = qosC2D
	}
	if c.streams != nil {
		w[topic.SubStreamRequests] = qosRequests
		w[topic.SubStreamResponses] = qosRequests
	}
	return w
}

// connect opens one MQTT session with a fresh token.
func (c *Client) connect(parent context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(parent, c.s.ConnectTimeout)
	defer cancel()
	sess := &session{lost: make(chan struct{}), subs: make(map[string]bool)}

	opts := mqtt.NewClientOptions()
	// The scheme and address are for paho's bookkeeping only: the
	// connection comes from the custom open function below.
	opts.AddBroker((&url.URL{Scheme: "tls", Host: c.d.hubAddr()}).String())
	opts.SetClientID(c.s.clientID)
	opts.SetUsername(c.s.username)
	var expiry time.Time // of the token sent, if any
	if c.s.signer != nil {
		token, exp, err := c.s.signer.Sign(c.s.TokenTTL)
		expiry = exp
		if err != nil {
			return nil, fmt.Errorf("iothub: sign token: %w", err)
		}
		opts.SetPassword(token)
		// Renew after 80% of the lifetime the token really has.
		life := expiry.Sub(c.s.Now())
		sess.renewAt = time.Duration(float64(life) * tokenRenewFraction)
		if sess.renewAt < time.Second {
			sess.renewAt = time.Second
		}
	}
	// Like the SDKs: persistent session (the C SDK and Node send clean
	// session 0, observed; PROTOCOL.md §14, §15).
	opts.SetCleanSession(false)
	opts.SetProtocolVersion(4) // MQTT 3.1.1 only: no fallback to 3.1
	opts.SetKeepAlive(c.s.Keepalive)
	opts.SetPingTimeout(c.s.pingTimeout)
	opts.SetConnectTimeout(c.s.ConnectTimeout)
	opts.SetWriteTimeout(c.s.ConnectTimeout)
	opts.SetAutoReconnect(false) // reconnects are ours, through sdk/retry
	opts.SetConnectRetry(false)
	opts.SetResumeSubs(false)
	opts.SetOrderMatters(true)    // one router goroutine, in order; our callbacks never block
	opts.SetAutoAckDisabled(true) // C2D is acknowledged after its handler ran
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.onMessage(sess, m) })
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { sess.end(err) })
	var abort func() bool // stops closing the connection when ctx ends
	opts.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		conn, err := c.d.open(ctx)
		if err != nil {
			return nil, err
		}
		abort = context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	})

	pc := mqtt.NewClient(opts)
	tok := pc.Connect()
	<-tok.Done() // bounded: the dial honours ctx, and ctx closes the connection
	if err := tok.Error(); err != nil {
		if ct, ok := tok.(*mqtt.ConnectToken); ok {
			if rc := ct.ReturnCode(); rc > 0 && rc <= 0x7f {
				ce := &ConnectError{ReturnCode: rc}
				if ce.HTTPStatus() == http.StatusUnauthorized && !expiry.IsZero() && !c.s.Now().Before(expiry) {
					// The token expired on the way (a connect slower
					// than its lifetime): the credential is fine, and
					// the next attempt signs a new token.
					return nil, fmt.Errorf("iothub: the SAS token expired before the hub checked it (%s); retrying with a new one", ce)
				}
				return nil, ce
			}
		}
		// A deadline may surface as a socket timeout (the WebSocket dialer
		// turns ctx's deadline into one) before ctx itself reports it.
		if expired(parent) {
			return nil, ctxErr(parent)
		}
		if expired(ctx) {
			return nil, c.timeoutError()
		}
		return nil, fmt.Errorf("iothub: connect to %s: %w", c.d.hubAddr(), err)
	}
	if abort != nil && !abort() {
		pc.Disconnect(0)
		if perr := parent.Err(); perr != nil {
			return nil, perr
		}
		return nil, c.timeoutError()
	}
	sess.pc = pc
	sess.started = c.s.Clock.Now()
	return sess, nil
}

// expired reports whether ctx is done or its deadline has passed.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// ctxErr is ctx's error, also in the instant before ctx notices its
// deadline.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

func (c *Client) timeoutError() error {
	return fmt.Errorf("iothub: connect to %s: no answer within %s: %w", c.d.hubAddr(), c.s.ConnectTimeout, os.ErrDeadlineExceeded)
}

// setup subscribes a new session and makes it current.
func (c *Client) setup(ctx context.Context, sess *session) error {
	if err := c.subscribe(ctx, sess); err != nil {
		return err
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.stoppedLocked()
		c.mu.Unlock()
		return err
	}
	c.sess = sess
	c.broadcastLocked()
	c.mu.Unlock()
	// Subscriptions for handlers registered meanwhile, and the desired
	// resync, happen on run's next turn.
	select {
	case c.resub <- struct{}{}:
	default:
	}
	return nil
}

// subscribe subscribes sess to the wanted filters it lacks. When the desired
// subscription is new, it resynchronises the desired document.
func (c *Client) subscribe(ctx context.Context, sess *session) error {
	c.mu.Lock()
	add := make(map[string]byte)
	for f, q := range c.wantedLocked() {
		if !sess.subs[f] {
			add[f] = q
		}
	}
	c.mu.Unlock()
	if len(add) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.ConnectTimeout)
	defer cancel()
	tok := sess.pc.SubscribeMultiple(add, nil)
	if err := c.waitToken(ctx, sess, tok); err != nil {
		return fmt.Errorf("iothub: subscribe: %w", err)
	}
	result := tok.(*mqtt.SubscribeToken).Result()
	var failed []string
	c.mu.Lock()
	for f := range add {
		if q, ok := result[f]; ok && q <= 2 {
			sess.subs[f] = true
		} else {
			failed = append(failed, f)
		}
	}
	c.broadcastLocked()
	c.mu.Unlock()
	if len(failed) > 0 {
		return fmt.Errorf("iothub: subscribe: hub refused %s: %w", strings.Join(failed, ", "), &StatusError{Status: http.StatusForbidden})
	}
	if _, ok := add[topic.SubTwinDesired]; ok {
		c.resyncDesired(sess)
	}
	return nil
}

// waitToken waits for a paho token, the session's end, ctx or Close.
func (c *Client) waitToken(ctx context.Context, sess *session, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		err := tok.Error()
		if err == nil {
			return nil
		}
		select {
		case <-sess.lost:
			// Failed because the connection went (e.g. paho's "publish
			// was broken by timeout" while disconnecting).
			return &lostError{cause: sess.cause}
		default:
		}
		if !errors.Is(err, mqtt.ErrNotConnected) {
			return err
		}
		// paho saw the connection go before its lost handler ran: wait
		// for that, then report the loss like any other.
		select {
		case <-sess.lost:
			return &lostError{cause: sess.cause}
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.stoppedLocked()
		}
	case <-sess.lost:
		return &lostError{cause: sess.cause}
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.stoppedLocked()
	}
}

// drop ends a session and disconnects it.
func (c *Client) drop(sess *session, reason error) {
	c.mu.Lock()
	if c.sess == sess {
		c.sess = nil
		c.broadcastLocked()
	}
	c.mu.Unlock()
	sess.end(reason)
	sess.pubMu.Lock()
	sess.closing = true
	sess.pubMu.Unlock()
	sess.pc.Disconnect(250)
}

// run owns the connection after Dial: it serves a session until it ends,
// then reconnects under Config.Retry, until the client stops.
//
// Reconnect timing: after a drop of a connection that had been up for at
// least a minute, and after a token renewal, the first attempt is
// immediate (as the SDKs do for a transport drop). Every failed attempt,
// and a drop of a younger connection, waits what sdk/retry's policy says
// (by default at least 5 s, doubling, with jitter, up to 5 min), and is
// announced to Config.Retry.Notify (if set) with the failure and the wait.
// A refusal of the credentials stops the client (Done, Err = *ConnectError),
// unless the token had already expired by the local clock when the refusal
// came (a connect slower than the token's lifetime): that attempt is
// retried with a new token.
func (c *Client) run(sess *session) {
	defer c.wg.Done()
	sched := c.s.Retry.NewSchedule()
	for {
		reason := c.serve(sess)
		lived := c.s.Clock.Now().Sub(sess.started)
		c.drop(sess, reason)
		if c.ctx.Err() != nil {
			return
		}
		c.s.log.Info("disconnected", "err", reason)
		c.notifyState(false, reason)
		renewal := errors.Is(reason, errTokenRenewal)
		if lived >= healthyAfter {
			sched.Reset()
		}
		var err error
		sess, err = c.reconnect(sched, renewal || lived >= healthyAfter, reason)
		if err != nil {
			if c.ctx.Err() == nil {
				c.s.log.Error("giving up", "err", err)
				c.finish(err)
			}
			return
		}
		c.s.log.Info("reconnected")
		c.notifyState(true, nil)
	}
}

// serve waits for sess to end, renews the token, and subscribes for new
// handlers.
func (c *Client) serve(sess *session) error {
	var renew <-chan time.Time
	if sess.renewAt > 0 {
		t := c.s.Clock.NewTimer(sess.renewAt)
		defer t.Stop()
		renew = t.C()
	}
	for {
		select {
		case <-c.ctx.Done():
			return ErrClosed
		case <-sess.lost:
			return &lostError{cause: sess.cause}
		case <-renew:
			c.s.log.Info("reconnecting to renew the SAS token")
			return errTokenRenewal
		case <-c.resub:
			if err := c.subscribe(c.ctx, sess); err != nil {
				if c.ctx.Err() != nil {
					return ErrClosed
				}
				var lost *lostError
				if errors.As(err, &lost) {
					return err
				}
				// A refused or unanswered SUBSCRIBE: start over on a new
				// connection rather than run without the topic.
				c.s.log.Warn("subscribe failed; reconnecting", "err", err)
				return &lostError{cause: err}
			}
		}
	}
}

// reconnect connects again, waiting between attempts as sched says.
func (c *Client) reconnect(sched *retry.Schedule, immediate bool, reason error) (*session, error) {
	var wait time.Duration
	if !immediate {
		var err error
		if wait, err = sched.Next(asTransient(reason)); err != nil {
			return nil, err
		}
	}
	for {
		if wait > 0 {
			c.s.log.Info("reconnecting", "wait", wait)
			if n := c.s.Retry.Notify; n != nil {
				n(reason, wait)
			}
			t := c.s.Clock.NewTimer(wait)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return nil, ErrClosed
			case <-t.C():
			}
		}
		sess, err := c.connect(c.ctx)
		if err == nil {
			if err = c.setup(c.ctx, sess); err == nil {
				return sess, nil
			}
			c.drop(sess, err)
		}
		if c.ctx.Err() != nil {
			return nil, ErrClosed
		}
		var ce *ConnectError
		if errors.As(err, &ce) && ce.HTTPStatus() != http.StatusServiceUnavailable {
			return nil, err
		}
		c.s.log.Warn("reconnect failed", "err", err)
		reason = err
		if wait, err = sched.Next(asTransient(err)); err != nil {
			return nil, err
		}
	}
}

// asTransient presents a connection failure to sdk/retry as a 503, so that
// every failure but a credential refusal is retried (a dropped link can fail
// in many ways paho reports as plain strings). Only the text is kept, so that
// no wrapped context error makes it permanent.
func asTransient(err error) error {
	return &retry.StatusError{Code: http.StatusServiceUnavailable, Err: errors.New(err.Error())}
}

func (c *Client) notifyState(connected bool, err error) {
	c.mu.Lock()
	h := c.state
	c.mu.Unlock()
	if h == nil {
		return
	}
	c.stateQ.push(func() { h(connected, err) })
}

// onMessage routes every message paho receives. It runs on paho's router
// goroutine and never blocks.
func (c *Client) onMessage(sess *session, m mqtt.Message) {
	t := m.Topic()
	switch {
	case strings.HasPrefix(t, prefix(topic.SubTwinResponses)):
		m.Ack()
		c.onTwinResponse(t, m.Payload())
	case strings.HasPrefix(t, prefix(topic.SubTwinDesired)):
		m.Ack()
		c.onDesired(t, m.Payload())
	case strings.HasPrefix(t, prefix(topic.SubMethods)):
		m.Ack()
		c.onMethod(sess, t, m.Payload())
	case strings.HasPrefix(t, prefix(topic.SubStreamRequests)):
		m.Ack()
		c.onStreamRequest(sess, t)
	case strings.HasPrefix(t, prefix(topic.SubStreamResponses)):
		m.Ack() // responses to service-initiated streams: nothing to do
	case strings.HasPrefix(t, prefix(topic.C2DSubscription(c.s.DeviceID))):
		c.onC2D(t, m)
	default:
		m.Ack()
		c.s.log.Warn("message on unexpected topic", "topic", t)
	}
}

// prefix turns a "…/#" filter into the prefix of the topics it matches.
func prefix(filter string) string { return strings.TrimSuffix(filter, "#") }
