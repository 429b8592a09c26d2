package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/service"
)

// outputFlag is -o table|json.
type outputFlag struct{ format string }

func (o *outputFlag) register(fsRegister func(p *string, name, value, usage string)) {
	fsRegister(&o.format, "o", "table", "output format: table or json")
}

func (o *outputFlag) check() error {
	if o.format != "table" && o.format != "json" {
		return usagef("-o %q: want table or json", o.format)
	}
	return nil
}

// jsonOnlyFlag is -o for a command that prints JSON only (invoke, dps
// get): it takes "-o json", which scripts pass to every command that
// prints data, and refuses any other format.
type jsonOnlyFlag struct{ format string }

func (o *jsonOnlyFlag) register(fsRegister func(p *string, name, value, usage string)) {
	fsRegister(&o.format, "o", "json", "output format: json (the only one this command prints)")
}

func (o *jsonOnlyFlag) check(cmd string) error {
	if o.format != "json" {
		return usagef("-o %q: %s prints JSON only; use -o json or leave -o out", o.format, cmd)
	}
	return nil
}

// deviceRow is one device in "porthole devices".
type deviceRow struct {
	DeviceID         string     `json:"deviceId"`
	Hub              string     `json:"hub"`
	HubHost          string     `json:"hubHost"`
	Status           string     `json:"status,omitempty"`
	ConnectionState  string     `json:"connectionState"`
	LastActivityTime *time.Time `json:"lastActivityTime,omitempty"`
	AgentVersion     string     `json:"agentVersion,omitempty"`
	Health           string     `json:"health"`
}

// healthSummary is the one-word health of a device: "ok", "error: …"
// (an error since the agent's current hub connection), "stale" (the device
// is offline, so its report is old), or "no report".
func healthSummary(connState string, h *health.Report) string {
	switch {
	case h == nil:
		return "no report"
	case !strings.EqualFold(connState, "Connected"):
		return "stale"
	case h.LastError != nil && !h.LastError.At.IsZero() && (h.Hub.Since.IsZero() || h.LastError.At.After(h.Hub.Since.Time)):
		return "error: " + h.LastError.Message
	}
	return "ok"
}

func timePtr(t *service.Timestamp) *time.Time {
	if t == nil || t.IsZero() || t.Year() < 2 {
		return nil
	}
	v := t.Time
	return &v
}

// cmdDevices: porthole devices [--hub H] [--query Q] [-o table|json].
func cmdDevices(ctx context.Context, e *env, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("devices", stderr)
	var cf connFlags
	cf.register(fs)
	query := fs.String("query", "SELECT * FROM devices", "IoT Hub query selecting the devices (twins)")
	pageSize := fs.Int("page-size", service.MaxQueryPageSize, "twins per query page (the hub pages with continuation tokens)")
	var out outputFlag
	out.register(fs.StringVar)
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || len(extra) != 0 {
		return usagef("usage: porthole devices [--hub H] [--query Q] [-o table|json]")
	}
	if err := out.check(); err != nil {
		return err
	}
	if *pageSize < 1 || *pageSize > service.MaxQueryPageSize {
		return usagef("--page-size %d: want 1 to %d", *pageSize, service.MaxQueryPageSize)
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	if len(s.hubs) == 0 {
		return usagef("no hub connection string: use --connection-string, $%s, or hubs: in %s", envConnectionString, s.configName())
	}
	hubs := s.hubs
	if s.hubFlag != "" {
		h, ok := s.hubByName(s.hubFlag)
		if !ok {
			return usagef("--hub %q is not configured (configured: %s)", s.hubFlag, s.hubNames())
		}
		hubs = []hubCred{h}
	}
	rows := []deviceRow{}
	seen := map[string]string{}
	for _, h := range hubs {
		c, err := s.clientFor(h)
		if err != nil {
			return err
		}
		items, err := c.QueryAll(ctx, *query, *pageSize, 0)
		c.Close()
		if err != nil {
			return fmt.Errorf("hub %s: %w%s", h.name, err, s.hint(err))
		}
		for _, it := range items {
			var tw service.Twin
			if err := json.Unmarshal(it, &tw); err != nil || tw.DeviceID == "" {
				return fmt.Errorf("hub %s: the query must select whole twins (SELECT * FROM devices …)", h.name)
			}
			rows = append(rows, deviceRowOf(&tw, h))
			seen[tw.DeviceID] = h.host
		}
	}
	if s.cacheTTL > 0 && len(seen) > 0 {
		_ = openCache(e, s.profile).putAll(seen) // for completion and the next ssh
	}
	if out.format == "json" {
		return writeJSON(stdout, rows)
	}
	return writeDevicesTable(stdout, rows)
}

// deviceRowOf is the devices row of a twin found on hub h.
func deviceRowOf(tw *service.Twin, h hubCred) deviceRow {
	hr := healthOf(tw)
	row := deviceRow{DeviceID: tw.DeviceID, Hub: h.name, HubHost: h.host, Status: tw.Status,
		ConnectionState: tw.ConnectionState, LastActivityTime: timePtr(tw.LastActivityTime), Health: healthSummary(tw.ConnectionState, hr)}
	if hr != nil {
		row.AgentVersion = hr.Version
	}
	return row
}

// writeDevicesTable is "porthole devices"'s table.
func writeDevicesTable(w io.Writer, rows []deviceRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tHUB\tSTATE\tLAST ACTIVITY\tAGENT\tHEALTH")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.DeviceID, r.Hub, dash(stateWord(r)), fmtTime(r.LastActivityTime), dash(r.AgentVersion), r.Health)
	}
	return tw.Flush()
}

func stateWord(r deviceRow) string {
	st := strings.ToLower(r.ConnectionState)
	if strings.EqualFold(r.Status, "disabled") {
		st += " (disabled)"
	}
	return st
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// deviceStatus is "porthole status"'s answer.
type deviceStatus struct {
	DeviceID         string     `json:"deviceId"`
	Hub              string     `json:"hub"`
	HubHost          string     `json:"hubHost"`
	FoundVia         string     `json:"foundVia"`
	Online           bool       `json:"online"`
	ConnectionState  string     `json:"connectionState"`
	LastActivityTime *time.Time `json:"lastActivityTime,omitempty"`
	AgentVersion     string     `json:"agentVersion,omitempty"`
	Started          *time.Time `json:"agentStarted,omitempty"`
	UptimeSeconds    int64      `json:"uptimeSeconds,omitempty"`
	Transport        string     `json:"transport,omitempty"`
	OpenStreams      *int       `json:"openStreams,omitempty"`
	StreamsAccepted  uint64     `json:"streamsAccepted,omitempty"`
	StreamsRejected  uint64     `json:"streamsRejected,omitempty"`
	LastRejection    *struct {
		Stream string     `json:"stream"`
		Reason string     `json:"reason"`
		At     *time.Time `json:"at,omitempty"`
	} `json:"lastRejection,omitempty"`
	LastError *struct {
		Message string     `json:"message"`
		At      *time.Time `json:"at,omitempty"`
	} `json:"lastError,omitempty"`
	Health string `json:"health"`
}

// cmdStatus: porthole status <device> [-o table|json].
func cmdStatus(ctx context.Context, e *env, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	var cf connFlags
	cf.register(fs)
	var out outputFlag
	out.register(fs.StringVar)
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(extra) != 0 {
		return usagef("usage: porthole status <device> [-o table|json]")
	}
	if err := out.check(); err != nil {
		return err
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	device := s.stripSuffix(pos[0])
	var st deviceStatus
	err = s.withDevice(ctx, e, device, func(c *service.Client, t target) error {
		tw, err := c.GetTwin(ctx, device)
		if err != nil {
			return fmt.Errorf("%w%s", err, s.hint(err))
		}
		st = statusOf(tw, t, e)
		return nil
	})
	if err != nil {
		return err
	}
	if out.format == "json" {
		return writeJSON(stdout, st)
	}
	return writeStatusTable(stdout, st)
}

// writeStatusTable is "porthole status"'s table.
func writeStatusTable(w io.Writer, st deviceStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	line("device", st.DeviceID)
	line("hub", fmt.Sprintf("%s (%s, found via %s)", st.Hub, st.HubHost, st.FoundVia))
	online := "no"
	if st.Online {
		online = "yes"
	}
	line("online", online+" (last activity "+fmtTime(st.LastActivityTime)+")")
	line("agent version", dash(st.AgentVersion))
	up := "-"
	if st.Started != nil {
		up = (time.Duration(st.UptimeSeconds) * time.Second).String() + " (started " + fmtTime(st.Started) + ")"
		if !st.Online {
			up = "- (offline; last started " + fmtTime(st.Started) + ")"
		}
	}
	line("uptime", up)
	streams := "-"
	if st.OpenStreams != nil {
		streams = fmt.Sprintf("%d open (%d accepted, %d rejected since start)", *st.OpenStreams, st.StreamsAccepted, st.StreamsRejected)
	}
	line("streams", streams)
	rej := "none"
	if st.LastRejection != nil {
		rej = fmt.Sprintf("stream %q at %s: %s", st.LastRejection.Stream, fmtTime(st.LastRejection.At), st.LastRejection.Reason)
	}
	line("last rejection", rej)
	le := "none"
	if st.LastError != nil {
		le = fmt.Sprintf("%s: %s", fmtTime(st.LastError.At), st.LastError.Message)
	}
	line("last error", le)
	line("health", st.Health)
	return tw.Flush()
}

func statusOf(tw *service.Twin, t target, e *env) deviceStatus {
	now := time.Now
	if e.now != nil {
		now = e.now
	}
	h := healthOf(tw)
	st := deviceStatus{DeviceID: tw.DeviceID, Hub: t.hub.name, HubHost: t.hub.host, FoundVia: t.via,
		Online: strings.EqualFold(tw.ConnectionState, "Connected"), ConnectionState: tw.ConnectionState,
		LastActivityTime: timePtr(tw.LastActivityTime), Health: healthSummary(tw.ConnectionState, h)}
	if h == nil {
		return st
	}
	st.AgentVersion, st.Started, st.Transport = h.Version, timeOf(h.Started), h.Hub.Transport
	if st.Started != nil && st.Online {
		st.UptimeSeconds = int64(now().Sub(*st.Started) / time.Second)
	}
	open := h.Streams.Open
	st.OpenStreams, st.StreamsAccepted, st.StreamsRejected = &open, h.Streams.Accepted, h.Streams.Rejected
	if r := h.LastRejection; r != nil {
		st.LastRejection = &struct {
			Stream string     `json:"stream"`
			Reason string     `json:"reason"`
			At     *time.Time `json:"at,omitempty"`
		}{r.Stream, r.Reason, timeOf(r.At)}
	}
	if le := h.LastError; le != nil {
		st.LastError = &struct {
			Message string     `json:"message"`
			At      *time.Time `json:"at,omitempty"`
		}{le.Message, timeOf(le.At)}
	}
	return st
}
