package dps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/ident"
	"github.com/porthole-iot/porthole/hubsim/internal/redact"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// Config configures a Service.
type Config struct {
	// IDScopes are the ID scopes this instance answers to; default {"0ne00000001"}.
	// All scopes share one enrollment list; the quota is kept per scope.
	IDScopes []string
	// ServiceHost is the DPS service host name, the resource of service SAS tokens.
	ServiceHost string
	// Policies are the shared access policies for the service API
	// (e.g. provisioningserviceowner with all rights). None: every service
	// request is refused.
	Policies []sas.Policy
	// Hubs are the linked IoT hubs. Required.
	Hubs ident.Hubs
	// HubRegions maps a hub host name to its region, for geoLatency.
	HubRegions map[string]string
	// HubWeights maps a hub host name to its allocation weight for hashed and
	// geoLatency allocation; missing or ≤ 0 means 1.
	HubWeights map[string]int
	// DeviceRegions maps a registration ID to the region the device is in, for geoLatency.
	DeviceRegions map[string]string
	// SourceRegions maps a client IP or CIDR to a region, for geoLatency;
	// consulted when DeviceRegions has no entry.
	SourceRegions map[string]string
	// DefaultAllocationPolicy applies to enrollments with no allocationPolicy
	// (and no legacy iotHubHostName); default "hashed".
	DefaultAllocationPolicy string
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AssignDelay is how long a registration reports "assigning" before its
	// result is visible; default 0.
	AssignDelay time.Duration
	// RetryAfter is the retry-after sent with 202 "assigning", rounded up to
	// whole seconds; default 2 s (Node's default polling interval,
	// Azure/azure-iot-sdk-node provisioning/device/src/constants.ts; the C#
	// MQTT transport clamps retry-after to ≥ 2 s,
	// Azure/azure-iot-sdk-csharp provisioning/transport/mqtt/src/ProvisioningErrorDetailsMqtt.cs).
	RetryAfter time.Duration
	// FastAssign, when set and the assignment has no delay (AssignDelay and
	// Faults.SlowAssign), answers the register request with the finished
	// operation (200, status "assigned" and the registration state) instead
	// of 202 "assigning" and a poll after RetryAfter. Azure always makes
	// clients poll; tests that provision many devices use this to skip the
	// ≥ 1 s wait (hubsimtest.WithFastDPS).
	FastAssign bool
	// Quota limits registrations per ID scope; the zero value means no limit.
	Quota Quota
	// StatsRetention is how far back Stats.PerSecond reaches; default
	// DefaultStatsRetention, and never less than two quota windows. Older
	// seconds are forgotten (Stats.PeakPerWindow still covers them), so a
	// long-running simulator keeps bounded statistics.
	StatsRetention time.Duration
	// Faults are test seams; nil means none.
	Faults *Faults
	// HTTPClient calls custom allocation webhooks; nil means a private client
	// with a 30 s timeout whose idle connections Close releases.
	HTTPClient *http.Client
	// Store, if non-nil, keeps enrollments, enrollment groups and
	// registration records: New loads them and every change is written
	// before it is acknowledged. The caller owns it (Close does not close it).
	Store *store.Store
}

// Faults are hooks tests set to make the service misbehave. Each hook is
// consulted, if non-nil, at the top of every device request (register, poll,
// status lookup, HTTPS or MQTT) for the registration ID it names.
type Faults struct {
	// Throttle, if non-nil and returning ok, answers 429 with this retry-after
	// (rounded up to whole seconds, at least 1).
	Throttle func(regID string) (retryAfter time.Duration, ok bool)
	// Fail5xx, if non-nil and returning ok, answers with this status (e.g. 500, 503).
	Fail5xx func(regID string) (status int, ok bool)
	// SlowAssign, if non-nil, adds this much to AssignDelay for the
	// registration being decided.
	SlowAssign func(regID string) time.Duration
}

// Errors of the Go API.
var (
	ErrNotFound           = errors.New("dps: not found")
	ErrPreconditionFailed = errors.New("dps: etag does not match")
	ErrInvalid            = errors.New("dps: invalid request")
	ErrClosed             = errors.New("dps: service closed")
)

const defaultIDScope = "0ne00000001"

// Service is a simulated Device Provisioning Service instance.
type Service struct {
	cfg        Config
	http       *HTTPAPI // the HTTPS API, built once by New
	log        *slog.Logger
	now        func() time.Time
	httpClient *http.Client
	ownClient  bool

	// ctx bounds webhook calls; cancel is called by Close.
	ctx    context.Context
	cancel context.CancelFunc

	devLocks keyedMutex // serialises decisions per registration ID

	mu          sync.Mutex                       // guards the fields below
	closed      bool                             // guarded by mu
	enrollments map[string]*IndividualEnrollment // guarded by mu; key: lower-case registration ID
	groups      map[string]*EnrollmentGroup      // guarded by mu; key: lower-case group ID
	regs        map[string]*registration         // guarded by mu; key: lower-case registration ID
	ops         map[string]*operation            // guarded by mu; key: operation ID
	limiters    map[string]*limiter              // guarded by mu; key: ID scope
	told        map[string]time.Time             // guarded by mu; scope/regID → when its last 429 said to come back
	pollTold    map[string]time.Time             // guarded by mu; operation ID → when its last 202 said to poll again
	stats       statsState                       // guarded by mu
	lastOpSweep time.Time                        // guarded by mu; when ops were last swept
	unhandled   []string                         // guarded by mu
}

// New returns a Service; it starts no goroutines.
func New(cfg Config) (*Service, error) {
	if cfg.Hubs == nil {
		return nil, fmt.Errorf("%w: Config.Hubs is required", ErrInvalid)
	}
	if len(cfg.IDScopes) == 0 {
		cfg.IDScopes = []string{defaultIDScope}
	}
	for _, sc := range cfg.IDScopes {
		if err := validScope(sc); err != nil {
			return nil, err
		}
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 2 * time.Second
	}
	if cfg.DefaultAllocationPolicy == "" {
		cfg.DefaultAllocationPolicy = AllocationHashed
	}
	switch cfg.DefaultAllocationPolicy {
	case AllocationHashed, AllocationGeoLatency, AllocationStatic, AllocationCustom:
	default:
		return nil, fmt.Errorf("%w: unknown default allocation policy %q", ErrInvalid, cfg.DefaultAllocationPolicy)
	}
	if err := cfg.Quota.validate(); err != nil {
		return nil, err
	}
	if cfg.StatsRetention < 0 {
		return nil, fmt.Errorf("%w: StatsRetention must not be negative", ErrInvalid)
	}
	s := &Service{
		cfg:         cfg,
		log:         redact.Logger(cfg.Logger),
		now:         cfg.Now,
		httpClient:  cfg.HTTPClient,
		enrollments: map[string]*IndividualEnrollment{},
		groups:      map[string]*EnrollmentGroup{},
		regs:        map[string]*registration{},
		ops:         map[string]*operation{},
		limiters:    map[string]*limiter{},
		told:        map[string]time.Time{},
		pollTold:    map[string]time.Time{},
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.httpClient == nil {
		s.httpClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 30 * time.Second}
		s.ownClient = true
	}
	if cfg.Store != nil {
		if err := s.load(context.Background(), cfg.Store); err != nil {
			return nil, fmt.Errorf("dps: loading state: %w", err)
		}
	}
	s.http = newHTTPAPI(s)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.stats = newStatsState(cfg.StatsRetention, cfg.Quota.window())
	return s, nil
}

// validScope refuses an ID scope that cannot be a literal first path
// segment of the device routes: only letters and digits (Azure's scopes
// look like 0ne00000001), and not a service collection's name, whose routes
// it would shadow.
func validScope(sc string) error {
	if sc == "" {
		return fmt.Errorf("%w: empty ID scope", ErrInvalid)
	}
	for _, c := range sc {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("%w: ID scope %q: only letters and digits", ErrInvalid, sc)
		}
	}
	if isCollection(sc) {
		return fmt.Errorf("%w: ID scope %q is the name of a service API collection", ErrInvalid, sc)
	}
	return nil
}

// Close cancels webhook calls in flight and refuses further device requests.
// It is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	s.cancel()
	if s.ownClient {
		s.httpClient.CloseIdleConnections()
	}
	return nil
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// IDScopes returns the ID scopes this instance answers to.
func (s *Service) IDScopes() []string { return append([]string(nil), s.cfg.IDScopes...) }

func (s *Service) knownScope(scope string) bool {
	for _, sc := range s.cfg.IDScopes {
		if strings.EqualFold(sc, scope) {
			return true
		}
	}
	return false
}

// Unhandled lists requests the service could not route (method and path, or
// MQTT topic), oldest first. hubsimtest fails a test that leaves any.
func (s *Service) Unhandled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unhandled...)
}

func (s *Service) recordUnhandled(what string) {
	s.log.Warn("dps: unhandled request", "what", what)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.unhandled) < 1000 {
		s.unhandled = append(s.unhandled, what)
	}
}

// registration is DPS's record of one device's registration.
type registration struct {
	RegistrationID    string
	DeviceID          string
	AssignedHub       string
	Status            string
	Substatus         string
	ErrorCode         int
	ErrorMessage      string
	Created           time.Time
	LastUpdated       time.Time
	ETag              string
	Payload           []byte // returned by the custom allocation webhook
	EnrollmentGroupID string // set when the device matched a group
	Attestation       string // AttestationSymmetricKey or AttestationX509
	CertInfo          *X509CertificateInfo
	SigningCertInfo   *X509CertificateInfo

	// Where the device's identity lives now ("" before the first assignment)
	// and every hub it was ever assigned to, in order.
	currentHub      string
	currentDeviceID string
	history         []string
}

func (r *registration) state() DeviceRegistrationState {
	st := DeviceRegistrationState{
		RegistrationID: r.RegistrationID,
		AssignedHub:    r.AssignedHub,
		DeviceID:       r.DeviceID,
		Status:         r.Status,
		Substatus:      r.Substatus,
		ErrorCode:      r.ErrorCode,
		ErrorMessage:   r.ErrorMessage,
		ETag:           r.ETag,
		Payload:        append([]byte(nil), r.Payload...),
	}
	if !r.Created.IsZero() {
		st.CreatedDateTimeUTC = ts(r.Created)
	}
	if !r.LastUpdated.IsZero() {
		st.LastUpdatedDateTimeUTC = ts(r.LastUpdated)
	}
	return st
}

func (r *registration) result() *DeviceRegistrationResult {
	st := r.state()
	res := &DeviceRegistrationResult{
		RegistrationID:         st.RegistrationID,
		CreatedDateTimeUTC:     st.CreatedDateTimeUTC,
		AssignedHub:            st.AssignedHub,
		DeviceID:               st.DeviceID,
		Status:                 st.Status,
		Substatus:              st.Substatus,
		ErrorCode:              st.ErrorCode,
		ErrorMessage:           st.ErrorMessage,
		LastUpdatedDateTimeUTC: st.LastUpdatedDateTimeUTC,
		ETag:                   st.ETag,
		Payload:                st.Payload,
	}
	switch r.Attestation {
	case AttestationSymmetricKey:
		res.SymmetricKey = &SymmetricKeyRegistrationResult{EnrollmentGroupID: r.EnrollmentGroupID}
	case AttestationX509:
		res.X509 = &X509RegistrationResult{CertificateInfo: r.CertInfo, EnrollmentGroupID: r.EnrollmentGroupID, SigningCertificateInfo: r.SigningCertInfo}
	}
	return res
}

func (r *registration) clone() *registration {
	c := *r
	c.history = append([]string(nil), r.history...)
	c.Payload = append([]byte(nil), r.Payload...)
	return &c
}

// operation is one register call's outcome, revealed at readyAt.
type operation struct {
	ID      string
	RegKey  string
	ReadyAt time.Time
	Created time.Time
	Status  string
	Result  *DeviceRegistrationResult
}

// keyedMutex is a set of mutexes created on demand, one per key.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry // guarded by mu
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int // guarded by keyedMutex.mu
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// newETag returns a fresh quoted entity tag, as DPS shows them
// ("\"1e00a7ae-0000-0800-0000-5d3a2d6f0000\"" in MicrosoftDocs/azure-docs
// articles/iot-dps/concepts-custom-allocation.md).
func newETag() string {
	h := randomHex(16)
	return `"` + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:] + `"`
}

// etagMatches compares an If-Match value with a stored etag, ignoring
// quotes and a weak prefix; "*" matches anything.
func etagMatches(ifMatch, etag string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		s = strings.TrimPrefix(s, "W/")
		return strings.Trim(s, `"`)
	}
	if norm(ifMatch) == "*" {
		return true
	}
	return norm(ifMatch) == norm(etag)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
