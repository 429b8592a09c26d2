package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"

	"github.com/porthole-iot/porthole/sdk/internal/topic"
)

// Twin is a device twin as the device sees it. The "$version" members are
// moved into the version fields; "$metadata", if the hub sent any, is
// removed from Desired.
type Twin struct {
	Desired         map[string]any
	Reported        map[string]any
	DesiredVersion  int
	ReportedVersion int
}

// twinResponse is a parsed `$iothub/twin/res/<status>/?$rid=…` message.
type twinResponse struct {
	status     int
	version    int64
	hasVersion bool
	body       []byte
}

// maxRequestAttempts bounds how often a twin request is sent again after the
// connection dropped under it (the request is idempotent: GET, or a merge
// patch).
const maxRequestAttempts = 3

// requestTimeout bounds the client's own twin requests (desired resync).
const requestTimeout = DefaultConnectTimeout

// GetTwin fetches the whole twin. It fails fast with ErrNotConnected while
// the client reconnects; a request cut off by a reconnect is sent again on
// the new connection. A non-2xx answer is a *StatusError. The desired
// document returned counts as seen by the application (see OnDesired).
func (c *Client) GetTwin(ctx context.Context) (*Twin, error) {
	r, err := c.request(ctx, topic.TwinGet, nil)
	if err != nil {
		return nil, fmt.Errorf("iothub: get twin: %w", err)
	}
	t, err := parseTwin(r.body)
	if err != nil {
		return nil, fmt.Errorf("iothub: get twin: %w", err)
	}
	c.mu.Lock()
	if t.DesiredVersion >= c.desiredKnown {
		c.desiredKnown = t.DesiredVersion
		c.desiredDoc = cloneMap(t.Desired)
	}
	c.mu.Unlock()
	return t, nil
}

// UpdateReported merges patch (any value that encodes to a JSON object;
// null members delete) into the reported properties and returns the new
// reported version (0 if the hub did not say). Errors as for GetTwin.
func (c *Client) UpdateReported(ctx context.Context, patch any) (int, error) {
	body, err := json.Marshal(patch)
	if err != nil {
		return 0, fmt.Errorf("iothub: update reported: %w", err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return 0, fmt.Errorf("iothub: update reported: patch must be a JSON object, got %.20s", body)
	}
	r, err := c.request(ctx, topic.TwinPatchReported, body)
	if err != nil {
		return 0, fmt.Errorf("iothub: update reported: %w", err)
	}
	if r.hasVersion {
		return int(r.version), nil
	}
	return 0, nil
}

// OnDesired registers h for desired-property changes. h runs on one client
// goroutine, in version order, with a JSON merge patch (RFC 7396: null
// deletes) and the desired version it leads to:
//
//   - first, when the subscription starts, the whole desired document
//     (skipped if the application already read that version with GetTwin);
//   - then each patch the hub sends, skipping versions already seen;
//   - after every reconnect (and when a version was skipped) the client reads
//     the twin again and, if the version moved, delivers the patch that turns
//     the last document the application saw into the current one, including
//     nulls for members deleted meanwhile.
//
// Applying every delivery in turn with merge-patch rules always yields the
// hub's current desired document. "$version" is not part of the patches.
func (c *Client) OnDesired(h func(patch map[string]any, version int)) {
	c.mu.Lock()
	c.desired = h
	c.handlersChanged()
	c.mu.Unlock()
}

// request sends a twin request on the current session; see GetTwin.
func (c *Client) request(ctx context.Context, build func(rid string) string, payload []byte) (twinResponse, error) {
	sess, err := c.current()
	if err != nil {
		return twinResponse{}, err
	}
	for attempt := 1; ; attempt++ {
		r, err := c.roundTrip(ctx, sess, build, payload)
		var lost *lostError
		if err == nil || !errors.As(err, &lost) || attempt == maxRequestAttempts {
			return r, err
		}
		c.s.log.Debug("twin request cut off by a reconnect; sending again", "err", err)
		if sess, err = c.waitConnected(ctx); err != nil {
			return twinResponse{}, err
		}
	}
}

// roundTrip publishes one twin request on sess and waits for its answer.
func (c *Client) roundTrip(ctx context.Context, sess *session, build func(rid string) string, payload []byte) (twinResponse, error) {
	rid := strconv.FormatUint(c.rid.Add(1), 10)
	ch := make(chan twinResponse, 1)
	c.mu.Lock()
	c.pending[rid] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, rid)
		c.mu.Unlock()
	}()
	if payload == nil {
		payload = []byte{}
	}
	if err := c.waitToken(ctx, sess, sess.publish(build(rid), qosRequests, payload)); err != nil {
		return twinResponse{}, err
	}
	select {
	case r := <-ch:
		if r.status < 200 || r.status > 299 {
			return r, statusError(r.status, r.body)
		}
		return r, nil
	case <-sess.lost:
		return twinResponse{}, &lostError{cause: sess.cause}
	case <-ctx.Done():
		return twinResponse{}, ctx.Err()
	case <-c.ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		return twinResponse{}, c.stoppedLocked()
	}
}

// statusError builds a *StatusError, with the message of an error body such
// as {"errorCode":400027,"message":"…"} when there is one.
func statusError(status int, body []byte) error {
	e := &StatusError{Status: status}
	var eb struct {
		Message string `json:"message"`
		Upper   string `json:"Message"`
	}
	if json.Unmarshal(body, &eb) == nil {
		e.Message = eb.Message
		if e.Message == "" {
			e.Message = eb.Upper
		}
	}
	return e
}

// onTwinResponse hands a twin response to its waiting request (router
// goroutine; never blocks).
func (c *Client) onTwinResponse(t string, payload []byte) {
	tr, err := topic.ParseTwinResponse(t)
	if err != nil {
		c.s.log.Warn("malformed twin response", "topic", t, "err", err)
		return
	}
	c.mu.Lock()
	ch := c.pending[tr.RID]
	c.mu.Unlock()
	if ch == nil {
		c.s.log.Debug("twin response for no pending request", "rid", tr.RID)
		return
	}
	select {
	case ch <- twinResponse{status: tr.Status, version: tr.Version, hasVersion: tr.HasVersion, body: bytes.Clone(payload)}:
	default:
	}
}

// onDesired queues a desired patch (router goroutine).
func (c *Client) onDesired(t string, payload []byte) {
	v, ok, err := topic.ParseTwinDesired(t)
	if err != nil {
		c.s.log.Warn("malformed desired-properties topic", "topic", t, "err", err)
		return
	}
	var patch map[string]any
	if err := json.Unmarshal(payload, &patch); err != nil || patch == nil {
		c.s.log.Warn("desired-properties patch is not a JSON object", "err", err)
		return
	}
	if pv, has := takeVersion(patch); !ok && has {
		v, ok = int64(pv), true
	}
	if !ok {
		c.s.log.Warn("desired-properties patch without a version")
		return
	}
	c.desiredQ.push(func() { c.deliverPatch(patch, int(v)) })
}

// deliverPatch runs on the desired queue.
func (c *Client) deliverPatch(patch map[string]any, v int) {
	c.mu.Lock()
	if c.desiredKnown != 0 && v <= c.desiredKnown {
		c.mu.Unlock()
		return
	}
	gap := c.desiredKnown != 0 && v > c.desiredKnown+1
	c.desiredKnown = v
	c.desiredDoc = mergePatch(c.desiredDoc, patch)
	h := c.desired
	sess := c.sess
	c.mu.Unlock()
	if h != nil {
		h(cloneMap(patch), v)
	}
	if gap && sess != nil {
		c.s.log.Info("desired version skipped; reading the twin again", "version", v)
		c.resyncDesired(sess)
	}
}

// resyncDesired queues a twin read on sess whose result is delivered as in
// OnDesired.
func (c *Client) resyncDesired(sess *session) {
	c.desiredQ.push(func() {
		ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
		defer cancel()
		r, err := c.roundTrip(ctx, sess, topic.TwinGet, nil)
		if err != nil {
			if c.ctx.Err() == nil {
				c.s.log.Warn("desired resync failed", "err", err)
			}
			return
		}
		t, err := parseTwin(r.body)
		if err != nil {
			c.s.log.Warn("desired resync failed", "err", err)
			return
		}
		c.deliverFull(t.Desired, t.DesiredVersion)
	})
}

// deliverFull runs on the desired queue with a whole desired document.
func (c *Client) deliverFull(doc map[string]any, v int) {
	c.mu.Lock()
	if c.desiredKnown == v && c.desiredKnown != 0 {
		c.mu.Unlock()
		return
	}
	var patch map[string]any
	if c.desiredDoc == nil {
		patch = cloneMap(doc)
	} else {
		patch = diffDocs(c.desiredDoc, doc)
	}
	c.desiredKnown = v
	c.desiredDoc = cloneMap(doc)
	h := c.desired
	c.mu.Unlock()
	if h != nil {
		h(patch, v)
	}
}

// parseTwin reads `{"desired":{…,"$version":n},"reported":{…,"$version":m}}`.
func parseTwin(body []byte) (*Twin, error) {
	var doc struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("twin document: %w", err)
	}
	t := &Twin{Desired: doc.Desired, Reported: doc.Reported}
	if t.Desired == nil {
		t.Desired = map[string]any{}
	}
	if t.Reported == nil {
		t.Reported = map[string]any{}
	}
	t.DesiredVersion, _ = takeVersion(t.Desired)
	t.ReportedVersion, _ = takeVersion(t.Reported)
	delete(t.Desired, "$metadata")
	return t, nil
}

// takeVersion removes "$version" from m and returns it.
func takeVersion(m map[string]any) (int, bool) {
	raw, ok := m["$version"]
	if !ok {
		return 0, false
	}
	delete(m, "$version")
	f, ok := raw.(float64)
	if !ok || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

// mergePatch applies a JSON merge patch (RFC 7396) to a copy of dst.
func mergePatch(dst, patch map[string]any) map[string]any {
	out := cloneMap(dst)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			old, _ := out[k].(map[string]any)
			out[k] = mergePatch(old, pv)
		default:
			out[k] = cloneValue(v)
		}
	}
	return out
}

// diffDocs returns the merge patch that turns from into to.
func diffDocs(from, to map[string]any) map[string]any {
	d := map[string]any{}
	for k := range from {
		if _, ok := to[k]; !ok {
			d[k] = nil
		}
	}
	for k, nv := range to {
		ov, had := from[k]
		om, oIsMap := ov.(map[string]any)
		nm, nIsMap := nv.(map[string]any)
		switch {
		case had && oIsMap && nIsMap:
			if sub := diffDocs(om, nm); len(sub) > 0 {
				d[k] = sub
			}
		case !had || !reflect.DeepEqual(ov, nv):
			d[k] = cloneValue(nv)
		}
	}
	return d
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = cloneValue(x[i])
		}
		return out
	default:
		return v
	}
}
