package iothub

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/porthole-iot/porthole/sdk/internal/topic"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// StreamRequest is a device-stream request from the hub: a service asked to
// open a stream to this device. Answer it with Accept or Reject; a request
// the handler leaves unanswered is rejected when the handler returns.
type StreamRequest struct {
	Name      string // stream name chosen by the service
	RequestID string // $rid
	URL       string // WebSocket URL of the streaming endpoint
	AuthToken string // bearer token for URL; never log it

	c    *Client
	sess *session // the connection the request came on

	mu       sync.Mutex
	answered bool // guarded by mu
}

// LogValue keeps the token out of structured logs.
func (r *StreamRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("stream", r.Name),
		slog.String("rid", r.RequestID),
		slog.String("url", r.URL),
	)
}

// OnStreamRequest registers h for device-stream requests. Each request runs
// h on its own goroutine, owned by the client; ctx ends when the client
// stops. Registering a handler subscribes to the stream topics; with a nil
// handler requests that still arrive are rejected.
func (c *Client) OnStreamRequest(h func(ctx context.Context, req *StreamRequest)) {
	c.mu.Lock()
	c.streams = h
	c.handlersChanged()
	c.mu.Unlock()
}

// Accept tells the hub the device takes the stream (`$iothub/streams/res/200`)
// and then opens the stream's WebSocket with the client's trusted roots,
// proxy and dial function. It fails with ErrStreamAnswered when the request
// was already answered, and with ErrConnectionLost (wrapped) when the
// connection the request came on has dropped.
func (r *StreamRequest) Accept(ctx context.Context) (*stream.Conn, error) {
	if err := r.answer(ctx, topic.StreamAccept); err != nil {
		return nil, err
	}
	conn, err := stream.Dial(ctx, r.URL, r.AuthToken, r.c.streamDialOptions())
	if err != nil {
		return nil, fmt.Errorf("iothub: stream %s: %w", r.Name, err)
	}
	return conn, nil
}

// Reject tells the hub the device refuses the stream
// (`$iothub/streams/res/400`).
func (r *StreamRequest) Reject(ctx context.Context) error {
	return r.answer(ctx, topic.StreamReject)
}

func (r *StreamRequest) answer(ctx context.Context, status int) error {
	r.mu.Lock()
	if r.answered {
		r.mu.Unlock()
		return ErrStreamAnswered
	}
	r.answered = true
	r.mu.Unlock()
	tok := r.sess.publish(topic.StreamResponse(r.RequestID, status), qosRequests, []byte{})
	if err := r.c.waitToken(ctx, r.sess, tok); err != nil {
		return fmt.Errorf("iothub: stream %s: answer %d: %w", r.Name, status, err)
	}
	return nil
}

func (c *Client) streamDialOptions() stream.DialOptions {
	o := stream.DialOptions{
		TLSConfig:      &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.s.RootCAs},
		NetDialContext: c.s.DialContext,
	}
	if c.s.ProxyURL != nil {
		o.Proxy = http.ProxyURL(c.s.ProxyURL)
	}
	return o
}

// onStreamRequest starts the stream handler (router goroutine).
func (c *Client) onStreamRequest(sess *session, t string) {
	p, err := topic.ParseStreamRequest(t)
	if err != nil {
		c.s.log.Warn("malformed stream request", "err", err) // the topic holds a token
		return
	}
	req := &StreamRequest{Name: p.Name, RequestID: p.RID, URL: p.URL, AuthToken: p.Auth, c: c, sess: sess}
	c.mu.Lock()
	h := c.streams
	c.goLocked(func() {
		if h != nil {
			h(c.ctx, req)
		}
		req.mu.Lock()
		answered := req.answered
		req.mu.Unlock()
		if !answered {
			c.s.log.Info("stream request left unanswered; rejecting", "stream", req.Name, "rid", req.RequestID)
			ctx, cancel := context.WithTimeout(c.ctx, c.s.ConnectTimeout)
			defer cancel()
			if err := req.Reject(ctx); err != nil {
				c.s.log.Warn("stream reject not sent", "stream", req.Name, "rid", req.RequestID, "err", err)
			}
		}
	})
	c.mu.Unlock()
}
