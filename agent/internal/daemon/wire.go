package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/provision"
	"github.com/porthole-iot/porthole/sdk/dps"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// sdkBackend makes the real clients from sdk/dps and sdk/iothub.
type sdkBackend struct {
	clock retry.Clock // nil: real
}

func (b sdkBackend) NewDPS(cfg *config.Config, dial dialFunc, log *slog.Logger) (provision.DPS, string, error) {
	p := cfg.Provisioning
	dc := dps.Config{
		GlobalEndpoint: p.GlobalEndpoint,
		IDScope:        p.IDScope,
		RegistrationID: p.RegistrationID,
		Transport:      string(p.Transport),
		RootCAs:        cfg.RootCAs,
		ProxyURL:       cfg.Proxy.URL,
		DialContext:    dial,
		// One attempt per call: provision owns the backoff between
		// attempts (429 Retry-After included), so that a DPS outage shows
		// in the status from the first failure, is logged once, and hands
		// control back to the flow, which tries the cached hub in between.
		Retry:  retry.Policy{Clock: b.clock, MaxAttempts: 1},
		Logger: sdkLogger(log),
	}
	if b.clock != nil {
		dc.Now = b.clock.Now
	}
	switch p.Attestation.Type {
	case config.AttestX509:
		dc.Certificate = p.Attestation.Certificate
	default:
		dc.SymmetricKey = p.Attestation.DeviceKey.Reveal()
	}
	c, err := dps.New(dc)
	if err != nil {
		return nil, "", err
	}
	return dpsAdapter{c}, c.RegistrationID(), nil
}

// dpsAdapter adapts *dps.Client to provision.DPS.
type dpsAdapter struct{ c *dps.Client }

func (a dpsAdapter) Register(ctx context.Context, payload json.RawMessage) (provision.Assignment, error) {
	var p any
	if len(payload) > 0 {
		p = payload
	}
	r, err := a.c.Register(ctx, p)
	return assignment(r), oneAttempt(err)
}

func (a dpsAdapter) Lookup(ctx context.Context) (provision.Assignment, error) {
	r, err := a.c.Lookup(ctx)
	return assignment(r), oneAttempt(err)
}

// oneAttempt takes the give-up error of a call limited to one attempt out
// of the chain, so that the flow classifies the failure itself (a 503 is
// retried, a 401 re-registers). The text stays sdk/dps's ("dps: register:
// status 503 …", where giving up after the only attempt adds nothing).
func oneAttempt(err error) error {
	var g *retry.GiveUpError
	if errors.As(err, &g) && g.Attempts <= 1 {
		return &relabeled{text: err.Error(), err: g.Err}
	}
	return err
}

// relabeled is err with another text.
type relabeled struct {
	text string
	err  error
}

func (r *relabeled) Error() string { return r.text }
func (r *relabeled) Unwrap() error { return r.err }

func assignment(r *dps.Result) provision.Assignment {
	if r == nil {
		return provision.Assignment{}
	}
	return provision.Assignment{
		AssignedHub: r.AssignedHub,
		DeviceID:    r.DeviceID,
		Status:      r.Status,
		Substatus:   r.Substatus,
		ETag:        r.ETag,
	}
}

func (b sdkBackend) DialHub(ctx context.Context, cfg *config.Config, a provision.Assignment, dial dialFunc, hooks hubHooks, log *slog.Logger) (hubConn, error) {
	hc := iothub.Config{
		HostName:    a.AssignedHub,
		DeviceID:    a.DeviceID,
		Transport:   string(cfg.Hub.Transport),
		RootCAs:     cfg.RootCAs,
		ProxyURL:    cfg.Proxy.URL,
		DialContext: dial,
		Keepalive:   cfg.Hub.Keepalive,
		TokenTTL:    cfg.Hub.TokenTTL,
		Logger:      sdkLogger(log), // the client adds the device itself
		Clock:       b.clock,
		// The client reconnects by itself; once it has failed for the
		// whole window it stops with retry.ErrGaveUp and provision asks
		// DPS (MicrosoftDocs/azure-docs articles/iot-dps/concepts-deploy-at-scale.md:
		// retry the cached hub 15–30 min, then go back to DPS). A live
		// change of the window applies from the next connection.
		// Reconnect waits are capped at provision.DefaultHubMaxBackoff (the
		// argument for 60 s is next to it) and announced for the status.
		Retry: retry.Policy{
			GiveUpAfter: cfg.Hub.RetryCachedHubFor,
			MaxBackoff:  provision.DefaultHubMaxBackoff,
			Notify:      hooks.Retrying,
		},
	}
	switch cfg.Provisioning.Attestation.Type {
	case config.AttestX509:
		hc.Certificate = cfg.Provisioning.Attestation.Certificate
	default:
		hc.SharedAccessKey = cfg.Provisioning.Attestation.DeviceKey.Reveal()
	}
	c, err := iothub.Dial(ctx, hc)
	if err != nil {
		return nil, err
	}
	h := hubAdapter{c}
	for name, m := range hooks.Methods {
		h.OnMethod(name, m)
	}
	if hooks.Stream != nil {
		c.OnStreamRequest(func(ctx context.Context, req *iothub.StreamRequest) {
			hooks.Stream(ctx, streamRequest{req})
		})
	}
	if hooks.State != nil {
		c.OnConnectionState(hooks.State)
	}
	// Handlers added after Dial are subscribed asynchronously; the agent is
	// only useful once they are live.
	if err := c.WaitSubscribed(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return h, nil
}

// hubAdapter adapts *iothub.Client to hubConn.
type hubAdapter struct{ c *iothub.Client }

func (h hubAdapter) Done() <-chan struct{} { return h.c.Done() }
func (h hubAdapter) Err() error            { return h.c.Err() }
func (h hubAdapter) Close()                { h.c.Close() }

func (h hubAdapter) UpdateReported(ctx context.Context, patch any) error {
	_, err := h.c.UpdateReported(ctx, patch)
	return err
}

func (h hubAdapter) OnMethod(name string, m methodHandler) {
	h.c.OnMethod(name, func(ctx context.Context, payload json.RawMessage) (int, any) { return m(ctx, payload) })
}

// streamRequest adapts *iothub.StreamRequest to bridge.Request.
type streamRequest struct{ r *iothub.StreamRequest }

func (s streamRequest) Name() string { return s.r.Name }

func (s streamRequest) Accept(ctx context.Context) (net.Conn, error) {
	c, err := s.r.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s streamRequest) Reject(ctx context.Context) error { return s.r.Reject(ctx) }

// RequestID and StreamID feed the bridge's registry and audit trail.
func (s streamRequest) RequestID() string { return s.r.RequestID }

func (s streamRequest) StreamID() string { return bridge.StreamIDFromURL(s.r.URL) }

var _ bridge.Request = streamRequest{}
