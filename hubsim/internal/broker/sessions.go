package broker

import (
	"container/list"
	"time"
)

// Bounds of the persistent-session store (see the package doc, "Persistent
// sessions").
const (
	// DefaultSessionExpiry is how long the session of a disconnected clean
	// session 0 client is kept. IoT Hub documents no expiry for MQTT 3.1.1
	// sessions (MicrosoftDocs/azure-docs articles/iot/iot-mqtt-connect-to-iot-hub.md
	// says only that a clean session 0 subscription outlives the connection),
	// and its MQTT 5 preview advertises Session Expiry Interval 0xFFFFFFFF,
	// i.e. never (articles/iot/iot-mqtt-5-preview.md, CONNACK example). A
	// simulator has to forget eventually; a day covers any device outage a
	// test or a demo lives through.
	DefaultSessionExpiry = 24 * time.Hour
	// DefaultMaxSessions bounds how many sessions of disconnected clients are
	// kept; beyond it the least recently stored is dropped. A session is a
	// handful of topic filters, so this is a few tens of MB at worst.
	DefaultMaxSessions = 65536
)

// storedSession is what the broker keeps of a disconnected clean session 0
// client (MQTT 3.1.1 §3.1.2.4): its subscriptions. QoS 1 messages are not
// kept; see the package doc.
type storedSession struct {
	key    clientKey
	subs   []subscription
	stored time.Time // when the client disconnected
}

// sessionStore keeps the sessions of disconnected clients by clientKey. It
// is not safe for concurrent use: the Broker guards it with its mu.
type sessionStore struct {
	expiry time.Duration
	max    int
	byKey  map[clientKey]*list.Element // → *storedSession in order
	order  *list.List                  // least recently stored first
}

func newSessionStore(expiry time.Duration, maxSessions int) *sessionStore {
	return &sessionStore{expiry: expiry, max: maxSessions, byKey: map[clientKey]*list.Element{}, order: list.New()}
}

// put stores subs as the session of key at now, replacing an older one, and
// drops what expired or exceeds the count bound.
func (s *sessionStore) put(key clientKey, subs []subscription, now time.Time) {
	s.drop(key)
	s.byKey[key] = s.order.PushBack(&storedSession{key: key, subs: subs, stored: now})
	s.sweep(now)
	for s.order.Len() > s.max {
		s.remove(s.order.Front())
	}
}

// take removes the session of key and returns it, unless it has expired.
func (s *sessionStore) take(key clientKey, now time.Time) (subs []subscription, ok bool) {
	e := s.byKey[key]
	if e == nil {
		return nil, false
	}
	ss := s.remove(e)
	if s.expired(ss, now) {
		return nil, false
	}
	return ss.subs, true
}

// drop forgets the session of key, if any.
func (s *sessionStore) drop(key clientKey) {
	if e := s.byKey[key]; e != nil {
		s.remove(e)
	}
}

// len returns how many sessions are stored (expired ones included until
// the next put sweeps them).
func (s *sessionStore) len() int { return s.order.Len() }

// sweep drops expired sessions from the front. Sessions are stored in
// clock order, so it stops at the first live one; with a clock that goes
// backwards a few may linger until take or the count bound removes them.
func (s *sessionStore) sweep(now time.Time) {
	for e := s.order.Front(); e != nil; e = s.order.Front() {
		if !s.expired(e.Value.(*storedSession), now) {
			return
		}
		s.remove(e)
	}
}

func (s *sessionStore) expired(ss *storedSession, now time.Time) bool {
	return !now.Before(ss.stored.Add(s.expiry))
}

func (s *sessionStore) remove(e *list.Element) *storedSession {
	ss := s.order.Remove(e).(*storedSession)
	delete(s.byKey, ss.key)
	return ss
}
