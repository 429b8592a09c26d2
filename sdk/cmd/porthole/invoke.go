package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/porthole-iot/porthole/sdk/service"
)

// cmdInvoke: porthole invoke <device> <method> [--payload JSON] [--timeout 30s].
// It prints {"status":…,"payload":…} and fails when the call fails; the
// device's status, whatever it is, is reported, not judged.
func cmdInvoke(ctx context.Context, e *env, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("invoke", stderr)
	var cf connFlags
	cf.register(fs)
	payload := fs.String("payload", "", "method payload (JSON; default null)")
	timeout := fs.Duration("timeout", service.DefaultMethodTimeout, "how long the hub waits for the device's answer (5s–300s)")
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || len(extra) != 0 {
		return usagef("usage: porthole invoke <device> <method> [--payload JSON] [--timeout 30s]")
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
	c, err := s.hubClient()
	if err != nil {
		return err
	}
	defer c.Close()
	status, resp, err := c.InvokeMethod(ctx, pos[0], pos[1], p, *timeout)
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
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}
