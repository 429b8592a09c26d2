package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
	"github.com/porthole-iot/porthole/agent/internal/provision"
)

// SocketName is the control socket's file name inside the state directory.
const SocketName = "agent.sock"

// Verbs understood on the control socket.
const (
	VerbStatus      = "status"
	VerbReprovision = "reprovision"
)

// maxRequest bounds a control request line.
const maxRequest = 4 << 10

// reprovisionTimeout bounds a reprovision asked for over the socket.
const reprovisionTimeout = 5 * time.Minute

// SocketPath returns the control socket's path for a state directory.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// Request is one control request.
type Request struct {
	Verb string `json:"verb"`
}

// Reply answers a Request. Error is set when the verb failed.
type Reply struct {
	Error       string                `json:"error,omitempty"`
	Status      *Status               `json:"status,omitempty"`
	Assignment  *provision.Assignment `json:"assignment,omitempty"`
	ConfigError string                `json:"configError,omitempty"`
}

// Status is the agent's state as the status verb reports it.
type Status struct {
	Version        string          `json:"version"`
	ConfigFile     string          `json:"configFile"`
	RegistrationID string          `json:"registrationId"`
	Started        time.Time       `json:"started"`
	Phase          provision.Phase `json:"phase"`
	Provisioned    bool            `json:"provisioned"`
	AssignedHub    string          `json:"assignedHub,omitempty"`
	DeviceID       string          `json:"deviceId,omitempty"`
	Substatus      string          `json:"substatus,omitempty"`
	Connected      bool            `json:"connected"`
	Registrations  int             `json:"registrations"`
	// HubReconnects counts hub connections lost (the client reconnects
	// by itself) since the agent started.
	HubReconnects uint64       `json:"hubReconnects"`
	Streams       bridge.Stats `json:"streams"`
	// LastError is the latest failure on the way to (or back to) the hub;
	// cleared once connected.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// NextAttempt is when the agent next tries DPS or the hub while it
	// waits after a failure (phase "waiting" or "reconnecting").
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// Failing names what keeps failing ("dps", "dps lookup", "hub"; empty
	// when nothing does), since when and after how many attempts; Hint
	// suggests a fix (a wrong system clock).
	Failing      provision.Step `json:"failing,omitempty"`
	FailingSince time.Time      `json:"failingSince,omitzero"`
	Attempts     int            `json:"attempts,omitempty"`
	Hint         string         `json:"hint,omitempty"`
	LastReload   *ReloadOutcome `json:"lastReload,omitempty"`
}

// ReloadOutcome records the last SIGHUP.
type ReloadOutcome struct {
	At      time.Time `json:"at"`
	Applied string    `json:"applied,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// ErrNotRunning is wrapped by Query's error when no agent listens on the
// socket (it does not exist, or nobody accepts on it).
var ErrNotRunning = errors.New("daemon: the agent is not running")

// Query sends one request to the agent listening at socketPath and returns
// its reply. A reply carrying an error is returned as an error too.
func Query(ctx context.Context, socketPath, verb string) (*Reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socketPath)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("%w (no agent answers on %s): %w", ErrNotRunning, socketPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: is the agent running? %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := json.NewEncoder(c).Encode(Request{Verb: verb}); err != nil {
		return nil, fmt.Errorf("daemon: send %s: %w", verb, err)
	}
	var r Reply
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&r); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("daemon: read reply: %w", err)
	}
	if r.Error != "" {
		return &r, errors.New(r.Error)
	}
	return &r, nil
}

// controlServer serves the control socket.
type controlServer struct {
	ln     net.Listener
	log    *slog.Logger
	handle func(ctx context.Context, verb string) Reply

	// ctx ends every request in flight on close.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the accept loop and the connection goroutines, all owned
	// by the server and waited for by close.
	wg sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
}

// listenControl creates the socket (0600) at path, replacing a stale one.
func listenControl(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("daemon: another agent is running (it answers on %s)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("daemon: remove stale socket: %w", err)
	}
	// The state directory is 0700, so nobody else can reach the socket in
	// the moment before the chmod.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("daemon: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daemon: control socket: %w", err)
	}
	return ln, nil
}

func newControlServer(ln net.Listener, log *slog.Logger, handle func(context.Context, string) Reply) *controlServer {
	ctx, cancel := context.WithCancel(context.Background())
	s := &controlServer{ln: ln, log: log, handle: handle, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

func (s *controlServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket accept failed", "err", err)
			}
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *controlServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(c, maxRequest).ReadSlice('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	rep := s.answer(line)
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(rep); err != nil {
		s.log.Debug("control reply not sent", "err", err)
	}
}

// close stops the server, ends requests in flight and waits.
func (s *controlServer) close() {
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		// Unblock reads; a handler in progress sees s.ctx end.
		c.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// answer parses one request line and runs it.
func (s *controlServer) answer(line []byte) Reply {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Reply{Error: "bad request: " + err.Error()}
	}
	if req.Verb == "" {
		return Reply{Error: "bad request: no verb"}
	}
	return s.handle(s.ctx, req.Verb)
}
