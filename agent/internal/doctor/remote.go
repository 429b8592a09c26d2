package doctor

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/sdk/auth"
)

// DPS and hub wire facts used here.
const (
	// portHTTPS serves DPS HTTPS, and MQTT over WebSocket for DPS and the
	// hub; portMQTT serves MQTT over TLS.
	// Azure/azure-iot-sdk-c provisioning_client/src/prov_transport_http_client.c
	// (HTTP_PORT_NUM 443); MicrosoftDocs/azure-docs
	// articles/iot/iot-mqtt-connect-to-iot-hub.md (port 8883, or 443 over WebSockets).
	portHTTPS = "443"
	portMQTT  = "8883"

	// dpsAPIVersion is the api-version the C SDK sends
	// (Azure/azure-iot-sdk-c provisioning_client/inc/azure_prov_client/prov_client_const.h PROV_API_VERSION).
	dpsAPIVersion = "2021-06-01"

	// The registration status lookup is
	// POST /{idScope}/registrations/{registrationId}?api-version=… with a
	// DeviceRegistration body, answered with a DeviceRegistrationResult
	// (Azure/azure-rest-api-specs specification/deviceprovisioningservices/
	// data-plane/DeviceProvisioningServices/device/routes.tsp;
	// Azure/azure-iot-sdk-csharp provisioning/transport/http/src/Generated/RuntimeRegistration.cs).
	dpsRegistrationsSegment = "/registrations/"

	// dpsTokenTTL matches the Node SDK's one-hour registration tokens
	// (Azure/azure-iot-sdk-node security/symmetric/src/symmetric_key.ts).
	dpsTokenTTL = time.Hour
)

// Clock limits.
const (
	skewWarn = time.Minute
	skewFail = 5 * time.Minute
)

// saneTime: a device clock before this has not been set since boot (boards
// without a battery-backed clock start at 1970 or at their build date).
var saneTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	nameDPSDNS    = "DNS for the provisioning service"
	nameDPSTLS    = "TLS to the provisioning service"
	nameClock     = "Clock"
	nameDPSLookup = "DPS accepts this device"
	nameHubDNS    = "DNS for the IoT hub"
	nameHubTLS    = "TLS to the IoT hub"
	nameTarget    = "Stream target"
)

func transportPort(t config.Transport) string {
	if t == config.TransportMQTT {
		return portMQTT
	}
	return portHTTPS
}

// splitEndpoint splits "host" or "host:port"; port defaults to def.
func splitEndpoint(ep, def string) (host, port string) {
	if h, p, err := net.SplitHostPort(ep); err == nil {
		return h, p
	}
	return ep, def
}

func (d *doctor) dps() {
	p := d.cfg.Provisioning
	host, port := splitEndpoint(p.GlobalEndpoint, transportPort(p.Transport))
	tlsOK := false
	if d.dns(nameDPSDNS, host, port) {
		tlsOK = d.tlsHandshake(nameDPSTLS, host, port)
	} else {
		d.skip(nameDPSTLS, "the host name does not resolve (see "+nameDPSDNS+")")
	}

	// The clock and the lookup talk HTTPS to the same host.
	_, httpsPort := splitEndpoint(p.GlobalEndpoint, portHTTPS)
	reachable := tlsOK || httpsPort != port
	d.clock(host, httpsPort, reachable)
	if d.opts.SkipLookup {
		return
	}
	if !reachable {
		d.skip(nameDPSLookup, "the provisioning service cannot be reached")
		return
	}
	d.lookup(host, httpsPort)
}

func (d *doctor) hub() {
	host, from := d.assignedHub, "assigned by DPS"
	if host == "" {
		host, from = d.cachedHub, "cached"
	}
	if host == "" {
		d.skip(nameHubDNS, "no hub is known yet: the device has not registered with DPS")
		d.skip(nameHubTLS, "no hub is known yet")
		return
	}
	port := transportPort(d.cfg.Hub.Transport)
	if !d.dns(nameHubDNS+" ("+from+")", host, port) {
		d.skip(nameHubTLS+" ("+from+")", "the host name does not resolve (see "+nameHubDNS+")")
		return
	}
	d.tlsHandshake(nameHubTLS+" ("+from+")", host, port)
}

// dns resolves host unless resolve pins host:port or a proxy resolves it;
// it reports whether the name resolved (a TLS check after a failed DNS
// check would only fail again for the same reason: it is skipped).
func (d *doctor) dns(name, host, port string) bool {
	hp := net.JoinHostPort(host, port)
	if to := d.cfg.DialAddr(hp); to != hp {
		d.ok(name, fmt.Sprintf("%s is pinned to %s by resolve (DNS not asked)", hp, to))
		return true
	}
	if d.net.proxy != nil {
		d.ok(name, fmt.Sprintf("%s is looked up by the proxy %s", host, d.net.proxy.Host))
		return true
	}
	if net.ParseIP(host) != nil {
		d.ok(name, host+" is an IP address")
		return true
	}
	ctx, cancel := d.stepCtx()
	defer cancel()
	addrs, err := d.opts.LookupHost(ctx, host)
	if err != nil {
		d.fail(name, fmt.Sprintf("cannot find %s: %v", host, err),
			"check the host name in the config, the device's DNS servers (/etc/resolv.conf) and its network connection")
		return false
	}
	d.ok(name, fmt.Sprintf("%s is %s", host, strings.Join(addrs, ", ")))
	return true
}

// tlsHandshake connects and completes a TLS handshake with host; it
// reports whether that worked.
func (d *doctor) tlsHandshake(name, host, port string) bool {
	hp := net.JoinHostPort(host, port)
	name += " (" + hp + ")"
	ctx, cancel := d.stepCtx()
	defer cancel()
	raw, err := d.net.dialTCP(ctx, hp)
	if err != nil {
		detail, fix := explainDial(err, hp, d.net.via())
		d.fail(name, detail, fix)
		return false
	}
	defer raw.Close()
	c := tls.Client(raw, d.net.tlsConfig(host))
	if err := c.HandshakeContext(ctx); err != nil {
		detail, fix := explainTLS(err, d.opts.Now())
		d.fail(name, detail, fix)
		return false
	}
	cs := c.ConnectionState()
	leaf := cs.PeerCertificates[0]
	issuer := certName(leaf.Issuer.CommonName, leaf.Issuer.String())
	trust := "the system's trusted CAs"
	if d.cfg.CAFile != "" {
		trust = "the system's CAs and " + d.cfg.CAFile
	}
	d.ok(name, fmt.Sprintf("%s%s; certificate issued by %s (trusted through %s), valid until %s",
		tls.VersionName(cs.Version), d.net.via(), issuer, trust, day(leaf.NotAfter)))
	return true
}

// dpsURL is the registration status lookup URL.
func (d *doctor) dpsURL(host, port string) string {
	p := d.cfg.Provisioning
	u := url.URL{
		Scheme:   "https",
		Host:     host,
		Path:     "/" + p.IDScope + dpsRegistrationsSegment + p.RegistrationID,
		RawPath:  "/" + url.PathEscape(p.IDScope) + dpsRegistrationsSegment + url.PathEscape(p.RegistrationID),
		RawQuery: "api-version=" + dpsAPIVersion,
	}
	if port != portHTTPS {
		u.Host = net.JoinHostPort(host, port)
	}
	return u.String()
}

func (d *doctor) lookupBody() []byte {
	b, _ := json.Marshal(struct {
		RegistrationID string `json:"registrationId"`
	}{d.cfg.Provisioning.RegistrationID})
	return b
}

// clock compares the local clock with the Date header of an anonymous
// request to DPS (the device API answers it with 401, which is enough).
func (d *doctor) clock(host, port string, reachable bool) {
	local := d.opts.Now()
	if local.Before(saneTime) {
		detail := fmt.Sprintf("the device's clock says %s: this board has no battery-backed clock and has not set the time from the network yet; TLS and DPS tokens cannot work", day(local))
		d.fail(nameClock, detail, "enable NTP (OpenWrt: System → Time Synchronization; systemd: timedatectl set-ntp true) or set the date with date -s")
		return
	}
	if !reachable {
		d.skip(nameClock, "the provisioning service cannot be reached to compare clocks")
		return
	}
	ctx, cancel := d.stepCtx()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.dpsURL(host, port), bytes.NewReader(d.lookupBody()))
	if err != nil {
		d.skip(nameClock, "cannot build the request: "+err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	before := d.opts.Now()
	resp, err := d.net.httpClient(d.net.timeFreeTLSConfig(host)).Do(req)
	after := d.opts.Now()
	if err != nil {
		d.warn(nameClock, "could not ask the provisioning service for the time: "+err.Error(), "see the TLS check above")
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	server, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		d.warn(nameClock, "the provisioning service sent no usable Date header; clock not compared", "make sure NTP is enabled")
		return
	}
	mid := before.Add(after.Sub(before) / 2)
	skew := server.Sub(mid)
	d.clockSkew, d.clockKnown = skew, true
	abs, dir := skew, "behind"
	if abs < 0 {
		abs, dir = -abs, "ahead of"
	}
	// Date has whole seconds: past a minute, say it in minutes.
	off := abs.Round(time.Second)
	if abs > skewWarn {
		off = abs.Round(time.Minute)
	}
	switch {
	case abs > skewFail:
		d.fail(nameClock, fmt.Sprintf("the device's clock is %s %s the provisioning service's (device %s, service %s); DPS and the hub refuse tokens and certificates when the clock is wrong",
			off, dir, day(mid), day(server)), "enable NTP or set the date with date -s")
	case abs > skewWarn:
		d.warn(nameClock, fmt.Sprintf("the device's clock is %s %s the provisioning service's", off, dir), "enable NTP so the clock stays right")
	default:
		d.ok(nameClock, fmt.Sprintf("within %s of the provisioning service's clock", maxDur(off, time.Second)))
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// lookupResult is the part of DPS's DeviceRegistrationResult doctor reads
// (Azure/azure-rest-api-specs .../device/models.tsp).
type lookupResult struct {
	AssignedHub  string `json:"assignedHub"`
	DeviceID     string `json:"deviceId"`
	Status       string `json:"status"`
	ErrorMessage string `json:"errorMessage"`
}

// dpsError is DPS's error body (ProvisioningServiceErrorDetails).
type dpsError struct {
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
}

// lookup asks DPS for the device's registration with its credential.
func (d *doctor) lookup(host, port string) {
	p := d.cfg.Provisioning
	a := p.Attestation
	tc := d.net.tlsConfig(host)
	ctx, cancel := d.stepCtx()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.dpsURL(host, port), bytes.NewReader(d.lookupBody()))
	if err != nil {
		d.skip(nameDPSLookup, "cannot build the request: "+err.Error())
		return
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case a.Type == config.AttestX509 && a.Certificate != nil:
		tc.Certificates = []tls.Certificate{*a.Certificate}
	case a.Type == config.AttestSymmetricKey && !a.DeviceKey.IsZero():
		tok, err := auth.DPSToken(p.IDScope, p.RegistrationID, a.DeviceKey.Reveal(), d.opts.Now().Add(dpsTokenTTL))
		if err != nil {
			d.skip(nameDPSLookup, "no usable credential (see Credentials)")
			return
		}
		req.Header.Set("Authorization", tok)
	default:
		d.skip(nameDPSLookup, "no usable credential (see Credentials)")
		return
	}
	resp, err := d.net.httpClient(tc).Do(req)
	if err != nil {
		detail, fix := explainTLS(err, d.opts.Now())
		if !isTLSError(err) {
			detail, fix = explainDial(err, req.URL.Host, d.net.via())
		}
		d.fail(nameDPSLookup, detail, fix)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	var derr dpsError
	_ = json.Unmarshal(body, &derr)
	who := "registration ID " + p.RegistrationID
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		var r lookupResult
		if err := json.Unmarshal(body, &r); err != nil {
			d.warn(nameDPSLookup, "DPS accepted the credential but its answer could not be read: "+err.Error(), "")
			return
		}
		switch r.Status {
		case "assigned":
			d.assignedHub = r.AssignedHub
			d.ok(nameDPSLookup, fmt.Sprintf("DPS accepts the credential; %s is assigned to hub %s as device %s", who, r.AssignedHub, r.DeviceID))
		case "disabled":
			d.fail(nameDPSLookup, "the enrollment for "+who+" is disabled in DPS", "enable the enrollment in the DPS portal")
		case "failed":
			d.fail(nameDPSLookup, fmt.Sprintf("the last registration of %s failed: %s", who, r.ErrorMessage), "check the enrollment's allocation (linked hubs, custom allocation) in DPS")
		default:
			d.ok(nameDPSLookup, fmt.Sprintf("DPS accepts the credential; %s is %s", who, r.Status))
		}
	case code == http.StatusNotFound && unknownScope(derr.Message):
		d.fail(nameDPSLookup, fmt.Sprintf("DPS does not know the ID scope %s (%s)", p.IDScope, strings.TrimSpace(derr.Message)),
			"copy id_scope again from the DPS overview page (it is the DPS's, not the hub's)")
	case code == http.StatusNotFound:
		// DPS checked the credential before looking for the registration.
		d.ok(nameDPSLookup, fmt.Sprintf("DPS accepts the credential; %s has not registered yet (normal before the first start: the agent registers when it starts)", who))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		detail := "DPS refused the credential: the key does not match the enrollment, or there is no enrollment for " + who
		fix := "copy the key again from the DPS enrollment (for a group: the group key) and check registration_id and id_scope"
		if a.Type == config.AttestX509 {
			detail = "DPS refused the device certificate: no enrollment matches it for " + who
			fix = "check the enrollment's certificate or CA in DPS and that the certificate's CN is the registration ID"
		}
		if d.clockKnown && (d.clockSkew > skewFail || d.clockSkew < -skewFail) {
			fix = "fix the clock first (see Clock): DPS refuses tokens signed with a wrong clock"
		}
		d.fail(nameDPSLookup, detail, fix)
	case code == http.StatusTooManyRequests || code >= 500:
		d.warn(nameDPSLookup, fmt.Sprintf("DPS is busy (%s)", resp.Status), "try again in a few minutes; the agent retries by itself")
	default:
		msg := strings.TrimSpace(derr.Message)
		if msg == "" {
			msg = resp.Status
		}
		d.fail(nameDPSLookup, fmt.Sprintf("DPS answered %s: %s", resp.Status, msg), "check id_scope and registration_id")
	}
}

// unknownScope reports whether a DPS 404 message is about the ID scope
// (hubsim: "unknown ID scope") rather than a registration not made yet.
func unknownScope(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "scope")
}

// isTLSError reports whether a request failed in the TLS handshake (as
// opposed to connecting).
func isTLSError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		rh tls.RecordHeaderError
		al tls.AlertError
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
		hn x509.HostnameError
	)
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &al) ||
		errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &hn)
}

// targets connects to every stream target and reads its SSH banner.
func (d *doctor) targets() {
	names := make([]string, 0, len(d.cfg.Streams.Targets))
	for n := range d.cfg.Streams.Targets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d.target(n, d.cfg.Streams.Targets[n])
	}
}

func (d *doctor) target(streamName, addr string) {
	name := fmt.Sprintf("%s %q (%s)", nameTarget, streamName, addr)
	ctx, cancel := d.stepCtx()
	defer cancel()
	c, err := d.opts.DialContext(ctx, "tcp", addr)
	if err != nil {
		detail, _ := explainDial(err, addr, "")
		d.fail(name, "nothing answers: "+detail,
			fmt.Sprintf("start the service (sshd or dropbear) on %s, or correct streams.targets.%s", addr, streamName))
		return
	}
	defer c.Close()
	wait := min(bannerWait, d.opts.Timeout)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	software, ok := parseBanner(readLine(c, 255))
	if !ok {
		d.ok(name, "a service is listening (no SSH banner)")
		return
	}
	if strings.Contains(strings.ToLower(software), "dropbear") {
		d.add(Check{Name: name, Status: StatusOK, Detail: "SSH server " + software + " answers",
			Fix: "dropbear's default receive window (24 KiB) makes uploads slow over a relay; start it with -W 1048576"})
		return
	}
	d.ok(name, "SSH server "+software+" answers")
}

// readLine reads up to the first '\n' (or max bytes, or the read deadline).
func readLine(r io.Reader, max int) string {
	buf := make([]byte, 0, max)
	tmp := make([]byte, max)
	for len(buf) < max {
		n, err := r.Read(tmp[:max-len(buf)])
		buf = append(buf, tmp[:n]...)
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			return string(buf[:i])
		}
		if err != nil {
			break
		}
	}
	return string(buf)
}

// parseBanner reads an SSH identification line, "SSH-protoversion-
// softwareversion SP comments" (RFC 4253 section 4.2), and returns the
// software version and comments with control characters removed.
func parseBanner(line string) (software string, ok bool) {
	line = strings.TrimRight(line, "\r\n")
	rest, ok := strings.CutPrefix(line, "SSH-")
	if !ok {
		return "", false
	}
	if _, sw, found := strings.Cut(rest, "-"); found {
		rest = sw
	}
	software = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, rest)
	if software == "" {
		return "", false
	}
	return software, true
}
