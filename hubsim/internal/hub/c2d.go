package hub

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// c2dMessage is one queued cloud-to-device message. Guarded by Hub.mu.
type c2dMessage struct {
	topic    string
	body     []byte
	inflight *session // the connection it was handed to, awaiting PUBACK; nil when queued
	rowID    int64    // its id in the store (0 without one)
}

// SendC2D queues a cloud-to-device message for a device. It is delivered on
// "devices/<id>/messages/devicebound/<propbag>" at QoS 1 as soon as the
// device is connected and subscribed, and stays queued across reconnects
// until delivered. A full queue (C2DQueueLimit) answers ErrQueueFull, as the
// hub's 403004 DeviceMaximumQueueDepthExceeded.
func (h *Hub) SendC2D(ctx context.Context, deviceID string, m C2DMessage) error {
	if len(m.Body) > MaxC2DMessageBytes {
		return fmt.Errorf("%w: cloud-to-device body of %d bytes is over Azure's limit of %d", ErrTooLarge, len(m.Body), MaxC2DMessageBytes)
	}
	mid := m.MessageID
	if mid == "" {
		var b [16]byte
		if _, err := io.ReadFull(h.set.rand, b[:]); err != nil {
			return fmt.Errorf("hub: message id: %w", err)
		}
		mid = hex.EncodeToString(b[:])
	}
	props := maps.Clone(m.Properties)
	if props == nil {
		props = map[string]string{}
	}
	for k := range props {
		if len(k) >= 2 && k[:2] == sysPropPrefix {
			return fmt.Errorf("%w: application property %q uses the system prefix", ErrInvalid, k)
		}
	}
	props[sysMessageID] = mid
	props[sysTo] = "/devices/" + deviceID + "/messages/devicebound"
	if m.CorrelationID != "" {
		props["$.cid"] = m.CorrelationID
	}
	if m.ContentType != "" {
		props["$.ct"] = m.ContentType
	}
	if m.ContentEncoding != "" {
		props["$.ce"] = m.ContentEncoding
	}
	topic := topicDevicesPrefix + deviceID + "/" + segDevicebound + formatPropBag(props)

	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.devices[deviceID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	if len(id.c2d) >= C2DQueueLimit {
		return fmt.Errorf("%w: %s has %d messages queued", ErrQueueFull, deviceID, len(id.c2d))
	}
	msg := &c2dMessage{topic: topic, body: bytes.Clone(m.Body)}
	id.c2d = append(id.c2d, msg)
	if err := h.persistWith(func(tx *store.Tx) error {
		var err error
		if msg.rowID, err = tx.AddC2D(h.host, deviceID, topic, msg.body); err != nil {
			return err
		}
		return h.putTwinDocLocked(tx, id)
	}); err != nil {
		id.c2d = id.c2d[:len(id.c2d)-1]
		return err
	}
	h.counters.c2dSent.Add(1)
	if id.sess != nil {
		id.sess.wakeLocked()
	}
	return nil
}

// PurgeC2D drops every queued message of a device and returns how many.
func (h *Hub) PurgeC2D(ctx context.Context, deviceID string) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.devices[deviceID]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	n := len(id.c2d)
	old := id.c2d
	id.c2d = nil
	if err := h.persistWith(func(tx *store.Tx) error {
		if err := tx.PurgeC2D(h.host, deviceID); err != nil {
			return err
		}
		return h.putTwinDocLocked(tx, id)
	}); err != nil {
		id.c2d = old
		return 0, err
	}
	return n, nil
}

// takeC2DLocked marks the queued (not in-flight) messages in flight on s and
// returns them, when s is a device connection subscribed to its C2D topic.
// Caller holds hub.mu.
func (s *session) takeC2DLocked() []*c2dMessage {
	if s.id == nil || s.moduleID != "" || s.id.sess != s || !s.subscribedLocked(s.topicPrefix()+segDevicebound+"#") {
		return nil
	}
	var out []*c2dMessage
	for _, m := range s.id.c2d {
		if m.inflight == nil {
			m.inflight = s
			out = append(out, m)
		}
	}
	return out
}

// deliverC2D publishes one message. It returns false when the broker does not
// have the device's subscription in place yet (the message goes back to the
// queue for a retry).
func (s *session) deliverC2D(m *c2dMessage) bool {
	h := s.hub
	var err error
	if ao, ok := s.out.(AckOutbound); ok {
		err = ao.PublishAcked(m.topic, m.body, func(acked bool) { h.c2dSettled(s, m, acked) })
	} else {
		err = s.out.Publish(m.topic, m.body, 1)
		if err == nil {
			h.c2dSettled(s, m, true)
		}
	}
	if err == nil {
		h.counters.messagesOut.Add(1)
		return true
	}
	h.c2dSettled(s, m, false)
	if errors.Is(err, broker.ErrNotSubscribed) {
		return false
	}
	s.logger().Debug("c2d publish failed", "err", err)
	return true
}

// c2dSettled completes (acked) or requeues a message handed to s.
func (h *Hub) c2dSettled(s *session, m *c2dMessage, acked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.id == nil {
		return
	}
	for i, q := range s.id.c2d {
		if q != m {
			continue
		}
		if acked {
			s.id.c2d = append(s.id.c2d[:i], s.id.c2d[i+1:]...)
			h.counters.c2dDone.Add(1)
			if err := h.persistWith(func(tx *store.Tx) error {
				if err := tx.DeleteC2D(m.rowID); err != nil {
					return err
				}
				return h.putTwinDocLocked(tx, s.id)
			}); err != nil {
				// The device has the message; at worst it is delivered
				// again after a restart (at-least-once, as QoS 1 allows).
				h.log.Error("hubsim: forgetting a delivered c2d message failed", "device", s.id.key(), "err", err)
			}
		} else if m.inflight == s {
			m.inflight = nil
		}
		return
	}
}
