package dps

import (
	"encoding/json"
	"testing"
	"time"
)

var jsonSeeds = []string{
	`{"operationId":"4.abc","status":"assigning"}`,
	`{"operationId":"4.abc","status":"assigned","registrationState":{"registrationId":"d","createdDateTimeUtc":"2025-01-01T00:00:00.0000000Z","assignedHub":"h","deviceId":"d","status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2025-01-01T00:00:01Z","etag":"\"e\"","payload":{"a":[1,2]}}}`,
	`{"operationId":"x","status":"failed","registrationState":{"status":"failed","errorCode":400209,"errorMessage":"no"}}`,
	`{"registrationState":{"status":"DISABLED"}}`,
	`{"errorCode":"401002","trackingId":"t","message":"m","timestampUtc":"2025-01-01T00:00:00Z"}`,
	`{"errorCode":1e99}`,
	`{"createdDateTimeUtc":"2025-01-01T00:00:00"}`,
	`{"payload":null}`,
	`null`, `[]`, `"str"`, ``, `{`, `{"status":5}`,
}

// FuzzDecodeOperation: never panics; a decoded operation always has a
// status, and its result's payload is valid JSON.
func FuzzDecodeOperation(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := decodeOperation(b)
		if err != nil {
			return
		}
		if op.Status == "" {
			t.Fatal("decoded operation without status")
		}
		if op.Result != nil && op.Result.Payload != nil && !json.Valid(op.Result.Payload) {
			t.Fatalf("payload %q is not JSON", op.Result.Payload)
		}
	})
}

// FuzzDecodeResult: never panics; times are UTC or zero; the payload is
// valid JSON or nil.
func FuzzDecodeResult(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeResult(b)
		if err != nil {
			return
		}
		for _, tm := range []time.Time{r.CreatedAt, r.UpdatedAt} {
			if !tm.IsZero() && tm.Location() != time.UTC {
				t.Fatalf("time %v not UTC", tm)
			}
		}
		if r.Payload != nil && !json.Valid(r.Payload) {
			t.Fatalf("payload %q is not JSON", r.Payload)
		}
	})
}

// FuzzStatusError: any error body yields a StatusError without panicking,
// keeping the status and the header's error code when the body has none.
func FuzzStatusError(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), 429, 429001)
	}
	f.Fuzz(func(t *testing.T, b []byte, status, hdrCode int) {
		e := statusError(response{status: status, body: b, errorCode: hdrCode})
		if e.StatusCode != status {
			t.Fatal("status lost")
		}
		if e.ErrorCode == 0 && hdrCode != 0 {
			t.Fatal("header error code lost")
		}
		_ = e.Error()
	})
}
