package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Azure IoT Hub's size limits, so that what passes against hubsim also
// passes on Azure. KB is 1024 bytes.
// [MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-devguide-quotas-throttling.md,
// "Other limits": device-to-cloud 256 KB, cloud-to-device 64 KB, direct
// method payload 128 KB, twin desired and reported 32 KB each, tags 8 KB];
// twin sizes are computed as in [articles/iot-hub/iot-hub-devguide-device-twins.md,
// "Device twin size"] (see twinSize).
const (
	MaxD2CMessageBytes    = 256 << 10
	MaxC2DMessageBytes    = 64 << 10
	MaxMethodPayloadBytes = 128 << 10
	MaxTagsBytes          = 8 << 10
	MaxDesiredBytes       = 32 << 10
	MaxReportedBytes      = 32 << 10
)

// ErrTooLarge: a message or payload is over Azure's size limit (REST 413
// MessageTooLarge).
var ErrTooLarge = errors.New("hub: message too large")

// twinSize computes a twin section's size Azure's way: for every property
// the length of its key plus the size of its value; strings count their
// characters except Unicode control characters (C0 and C1), numbers 8,
// booleans 4, objects (and arrays) the sum of what they contain. Read-only
// "$" elements ($version, $metadata, $etag) do not count.
func twinSize(m map[string]any) int {
	n := 0
	for k, v := range m {
		if strings.HasPrefix(k, "$") {
			continue
		}
		n += chars(k) + valueSize(v)
	}
	return n
}

func valueSize(v any) int {
	switch v := v.(type) {
	case string:
		return chars(v)
	case bool:
		return 4
	case json.Number, float64, float32, int, int64, int32, uint64:
		return 8
	case map[string]any:
		return twinSize(v)
	case []any:
		n := 0
		for _, e := range v {
			n += valueSize(e)
		}
		return n
	}
	return 0 // null
}

// chars counts the characters of s that are not C0 or C1 controls.
func chars(s string) int {
	n := 0
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			continue
		}
		n++
	}
	return n
}

// checkTwinSize refuses a change that would leave section (after the
// change) over limit while growing it; shrinking an oversized section is
// allowed, as Azure only rejects "operations that would increase the size
// … above the limit".
func checkTwinSize(section string, before, after map[string]any, limit int) error {
	if n := twinSize(after); n > limit && n > twinSize(before) {
		return fmt.Errorf("%w: twin %s would be %d bytes, over Azure's limit of %d", ErrInvalid, section, n, limit)
	}
	return nil
}

// merged returns vals with patch merged in (JSON merge patch), leaving
// vals untouched.
func merged(vals, patch map[string]any) map[string]any {
	out := deepCopyMap(vals)
	mergeTags(out, patch)
	return out
}
