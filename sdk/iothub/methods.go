package iothub

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/porthole-iot/porthole/sdk/internal/topic"
)

// MethodHandler answers a direct method. payload is the request's JSON
// ("null" when the caller sent none). The returned status and response
// (encoded with encoding/json; nil encodes as null) go back to the caller.
// ctx ends when the client stops.
type MethodHandler func(ctx context.Context, payload json.RawMessage) (status int, response any)

// OnMethod registers h for the direct method name, replacing any previous
// handler; a nil h removes it. Each call runs on its own goroutine, owned by
// the client. A method without a handler is answered with status 501 and an
// empty body, as the C# SDK does (the hub hands the caller a null payload).
func (c *Client) OnMethod(name string, h MethodHandler) {
	c.mu.Lock()
	if h == nil {
		delete(c.methods, name)
	} else {
		c.methods[name] = h
	}
	c.handlersChanged()
	c.mu.Unlock()
}

// onMethod starts the handler of a method request (router goroutine).
func (c *Client) onMethod(sess *session, t string, payload []byte) {
	req, err := topic.ParseMethodRequest(t)
	if err != nil {
		c.s.log.Warn("malformed method request", "topic", t, "err", err)
		return
	}
	body := bytes.Clone(bytes.TrimSpace(payload))
	if len(body) == 0 {
		body = []byte("null")
	}
	c.mu.Lock()
	h := c.methods[req.Name]
	c.goLocked(func() { c.callMethod(sess, req, h, body) })
	c.mu.Unlock()
}

func (c *Client) callMethod(sess *session, req topic.MethodRequest, h MethodHandler, payload []byte) {
	log := c.s.log.With("method", req.Name, "rid", req.RID)
	status, body := StatusMethodNotImplemented, []byte{}
	if h != nil {
		var resp any
		status, resp = h(c.ctx, json.RawMessage(payload))
		b, err := json.Marshal(resp)
		if err != nil {
			log.Warn("method response is not JSON", "err", err)
			status = StatusMethodHandlerError
			b, _ = json.Marshal(err.Error())
		}
		body = b
	} else {
		log.Info("no handler for direct method")
	}
	// The reply belongs to the connection the request came on: a request id
	// means nothing on another one (the hub failed the call when it dropped).
	ctx, cancel := context.WithTimeout(c.ctx, c.s.ConnectTimeout)
	defer cancel()
	if err := c.waitToken(ctx, sess, sess.publish(topic.MethodResponse(req.RID, status), qosRequests, body)); err != nil {
		log.Warn("method response not sent", "err", err)
	}
}
