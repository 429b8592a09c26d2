package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/porthole-iot/porthole/sdk/service"
)

// cmdInvoke: porthole invoke <device> <method> [--payload JSON] [--timeout 30s] [-o json].
// It prints {"status":…,"payload":…} and fails when the call fails or the
// device's status is 400 or more (the answer is printed first).
func cmdInvoke(ctx context.Context, e *env, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("invoke", stderr)
	var cf connFlags
	cf.register(fs)
	payload := fs.String("payload", "", "method payload (JSON; default null)")
	timeout := fs.Duration("timeout", service.DefaultMethodTimeout, "how long the hub waits for the device's answer (5s–300s)")
	var of jsonOnlyFlag
	of.register(fs.StringVar)
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := of.check("invoke"); err != nil {
		return err
	}
	if len(pos) != 2 || len(extra) != 0 {
		return usagef("usage: porthole invoke <device> <method> [--payload JSON] [--timeout 30s] [-o json]")
	}
	var p any
	if *payload != "" {
		if !json.Valid([]byte(*payload)) {
			return usagef("--payload is not valid JSON")
		}
		p = json.RawMessage(*payload)
	}
	if *timeout < time.Second {
		return usagef("--timeout %v is too short", *timeout)
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	var status int
	var resp json.RawMessage
	err = s.withDevice(ctx, e, pos[0], func(c *service.Client, _ target) error {
		var err error
		status, resp, err = c.InvokeMethod(ctx, pos[0], pos[1], p, *timeout)
		if err != nil {
			return fmt.Errorf("%w%s", err, s.hint(err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	out, err := json.Marshal(struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{status, resp})
	if err != nil {
		return fmt.Errorf("device answered with invalid JSON: %w", err)
	}
	if _, err = fmt.Fprintf(stdout, "%s\n", out); err != nil {
		return err
	}
	if status >= 400 {
		return &methodStatusError{method: pos[1], status: status}
	}
	return nil
}

// methodStatusError: the device answered the method with a failure status
// (its payload is printed all the same); porthole exits 1.
type methodStatusError struct {
	method string
	status int
}

func (e *methodStatusError) Error() string {
	return fmt.Sprintf("method %q answered with status %d", e.method, e.status)
}
