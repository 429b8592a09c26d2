package hub

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// propSet is one side (desired or reported) of a twin: the values, their
// metadata tree and the side's $version.
type propSet struct {
	vals    map[string]any
	meta    *metaNode
	version int64
}

// metaNode mirrors one value in a propSet: when it was last written and, for
// desired properties, at which $version. [doc: Understand and use device twins
// in IoT Hub (iot-hub-devguide-device-twins.md), "Twin metadata"].
type metaNode struct {
	updated time.Time
	version int64
	kids    map[string]*metaNode
}

func newPropSet(now time.Time) propSet {
	return propSet{vals: map[string]any{}, meta: &metaNode{updated: now}, version: 1}
}

// twin is a device or module twin. Guarded by Hub.mu.
type twin struct {
	tags     map[string]any
	desired  propSet
	reported propSet
	version  int64 // twin "version": advances on every change
}

func newTwin(now time.Time) *twin {
	return &twin{tags: map[string]any{}, desired: newPropSet(now), reported: newPropSet(now), version: 1}
}

// etag renders the twin etag as Azure does: base64 of the 8-byte big-endian version.
func (t *twin) etag() string { return versionETag(t.version) }

func versionETag(v int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return base64.StdEncoding.EncodeToString(b[:])
}

// validateKeys checks twin property names: no '.', '$', space or control
// characters [doc: Understand and use device twins in IoT Hub, "Tags and
// properties format"]. "$version" and "$metadata" at the top level are
// removed by the caller before this runs.
func validateKeys(m map[string]any, depth int) error {
	// The documented maximum depth of a JSON object in tags/desired/reported is 10.
	if depth > 10 {
		return fmt.Errorf("%w: twin nested deeper than 10 levels", ErrInvalid)
	}
	for k, v := range m {
		if k == "" || strings.ContainsAny(k, ".$ ") || strings.IndexFunc(k, unicode.IsControl) >= 0 {
			return fmt.Errorf("%w: invalid twin property name %q", ErrInvalid, k)
		}
		if sub, ok := v.(map[string]any); ok {
			if err := validateKeys(sub, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanPatch drops the read-only "$version"/"$metadata" keys some clients echo
// back and validates the rest.
func cleanPatch(p map[string]any) (map[string]any, error) {
	if p == nil {
		return map[string]any{}, nil
	}
	out := make(map[string]any, len(p))
	for k, v := range p {
		if k == "$version" || k == "$metadata" {
			continue
		}
		out[k] = v
	}
	if err := validateKeys(out, 1); err != nil {
		return nil, err
	}
	return out, nil
}

// applyPatch merges patch into vals (JSON merge patch: null deletes, objects
// merge, anything else replaces) and records metadata at now/version.
func applyPatch(vals map[string]any, meta *metaNode, patch map[string]any, now time.Time, version int64) {
	meta.updated, meta.version = now, version
	for k, v := range patch {
		if v == nil {
			delete(vals, k)
			if meta.kids != nil {
				delete(meta.kids, k)
			}
			continue
		}
		if meta.kids == nil {
			meta.kids = map[string]*metaNode{}
		}
		if sub, ok := v.(map[string]any); ok {
			cur, isMap := vals[k].(map[string]any)
			kid := meta.kids[k]
			if !isMap || kid == nil {
				cur = map[string]any{}
				kid = &metaNode{}
				vals[k] = cur
				meta.kids[k] = kid
			}
			applyPatch(cur, kid, sub, now, version)
			continue
		}
		vals[k] = deepCopy(v)
		meta.kids[k] = &metaNode{updated: now, version: version}
	}
}

// replaceProps replaces a propSet's values wholesale and returns the patch
// that turns the old values into the new ones (nulls for removed keys).
func (p *propSet) replace(newVals map[string]any, now time.Time) map[string]any {
	patch := map[string]any{}
	for k := range p.vals {
		if _, ok := newVals[k]; !ok {
			patch[k] = nil
		}
	}
	for k, v := range newVals {
		patch[k] = deepCopy(v)
	}
	p.version++
	p.vals = map[string]any{}
	p.meta = &metaNode{}
	applyPatch(p.vals, p.meta, newVals, now, p.version)
	return patch
}

// patch applies a merge patch to the propSet, advancing its version.
func (p *propSet) patch(patch map[string]any, now time.Time) {
	p.version++
	applyPatch(p.vals, p.meta, patch, now, p.version)
}

// deviceView renders the side as the device sees it: values plus "$version".
func (p *propSet) deviceView() map[string]any {
	m := deepCopyMap(p.vals)
	m["$version"] = p.version
	return m
}

// serviceView renders the side as the service sees it: values, "$metadata"
// and "$version".
func (p *propSet) serviceView(withVersion bool) map[string]any {
	m := deepCopyMap(p.vals)
	m["$metadata"] = p.meta.render(withVersion)
	m["$version"] = p.version
	return m
}

func (n *metaNode) render(withVersion bool) map[string]any {
	m := map[string]any{"$lastUpdated": formatTime(n.updated)}
	if withVersion {
		m["$lastUpdatedVersion"] = n.version
	}
	for k, kid := range n.kids {
		m[k] = kid.render(withVersion)
	}
	return m
}

// deviceDocument is the body of "$iothub/twin/res/200": desired and reported,
// each with its "$version". [Azure/azure-iot-sdk-node device/transport/mqtt/src/mqtt_twin_client.ts]
func (t *twin) deviceDocument() []byte {
	b, _ := json.Marshal(map[string]any{
		"desired":  t.desired.deviceView(),
		"reported": t.reported.deviceView(),
	})
	return b
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopyMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopy(v)
	}
	return out
}

// formatTime renders times as Azure does (RFC 3339, UTC, fractional seconds).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// decodeObject parses a JSON object, keeping numbers as json.Number so values
// round-trip exactly.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after JSON object", ErrInvalid)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: expected a JSON object", ErrInvalid)
	}
	return m, nil
}
