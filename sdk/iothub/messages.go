package iothub

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/porthole-iot/porthole/sdk/internal/topic"
)

// MessageOption sets a property of a device-to-cloud message.
type MessageOption func(*outMessage)

// outMessage is what MessageOptions edit.
type outMessage struct{ props topic.Properties }

// WithProperty adds an application property. Names must not start with '$'.
func WithProperty(name, value string) MessageOption {
	return func(m *outMessage) { m.props.User = append(m.props.User, topic.Property{Name: name, Value: value}) }
}

// WithContentType sets the message's content type ($.ct), e.g.
// "application/json"; routing queries on the body need it.
func WithContentType(ct string) MessageOption {
	return func(m *outMessage) { m.props.ContentType = ct }
}

// WithContentEncoding sets the body's encoding ($.ce), e.g. "utf-8".
func WithContentEncoding(ce string) MessageOption {
	return func(m *outMessage) { m.props.ContentEncoding = ce }
}

// WithMessageID sets the message id ($.mid).
func WithMessageID(id string) MessageOption {
	return func(m *outMessage) { m.props.MessageID = id }
}

// WithCorrelationID sets the correlation id ($.cid).
func WithCorrelationID(id string) MessageOption {
	return func(m *outMessage) { m.props.CorrelationID = id }
}

// SendEvent sends a device-to-cloud message at QoS 1 and returns once the hub
// acknowledged it (PUBACK). While the client reconnects it waits for the
// connection (bounded by ctx); a message whose connection dropped before the
// acknowledgement is sent again on the next one, so the hub may see it twice
// (at-least-once delivery).
func (c *Client) SendEvent(ctx context.Context, payload []byte, opts ...MessageOption) error {
	var m outMessage
	for _, o := range opts {
		o(&m)
	}
	t, err := topic.Telemetry(c.s.DeviceID, c.s.ModuleID, m.props)
	if err != nil {
		return fmt.Errorf("iothub: send event: %w", err)
	}
	for {
		sess, err := c.waitConnected(ctx)
		if err != nil {
			return fmt.Errorf("iothub: send event: %w", err)
		}
		err = c.waitToken(ctx, sess, sess.publish(t, qosTelemetry, payload))
		var lost *lostError
		if !errors.As(err, &lost) {
			if err != nil {
				return fmt.Errorf("iothub: send event: %w", err)
			}
			return nil
		}
		c.s.log.Debug("event cut off by a reconnect; sending again", "err", err)
	}
}

// Message is a cloud-to-device message.
type Message struct {
	Payload []byte
	// Properties are the application properties.
	Properties map[string]string

	MessageID       string // $.mid
	CorrelationID   string // $.cid
	UserID          string // $.uid
	To              string // $.to, e.g. "/devices/<id>/messages/devicebound"
	ContentType     string // $.ct
	ContentEncoding string // $.ce
	ExpiryTimeUTC   string // $.exp (ISO 8601)
	CreationTimeUTC string // $.ctime (ISO 8601)
}

// OnC2D registers h for cloud-to-device messages. Messages are delivered one
// at a time, in order, on a client goroutine, and acknowledged to the hub
// when h returns; messages not yet handled when the connection drops are
// delivered again by the hub after the reconnect. A nil h stops delivery
// (messages that still arrive are acknowledged and dropped). Modules have
// no cloud-to-device queue in IoT Hub; for a module client h is never
// called.
func (c *Client) OnC2D(h func(Message)) {
	c.mu.Lock()
	c.c2d = h
	c.handlersChanged()
	c.mu.Unlock()
}

// onC2D queues a cloud-to-device message (router goroutine).
func (c *Client) onC2D(t string, m mqtt.Message) {
	parsed, err := topic.ParseC2D(t)
	if err != nil {
		m.Ack()
		c.s.log.Warn("malformed cloud-to-device topic", "topic", t, "err", err)
		return
	}
	p := parsed.Properties
	msg := Message{
		Payload:         bytes.Clone(m.Payload()),
		Properties:      make(map[string]string, len(p.User)),
		MessageID:       p.MessageID,
		CorrelationID:   p.CorrelationID,
		UserID:          p.UserID,
		To:              p.To,
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		ExpiryTimeUTC:   p.ExpiryTimeUTC,
		CreationTimeUTC: p.CreationTimeUTC,
	}
	for _, u := range p.User {
		msg.Properties[u.Name] = u.Value
	}
	c.c2dQ.push(func() {
		c.mu.Lock()
		h := c.c2d
		c.mu.Unlock()
		if h != nil {
			h(msg)
		} else {
			c.s.log.Warn("cloud-to-device message without a handler dropped", "messageId", msg.MessageID)
		}
		m.Ack()
	})
}
