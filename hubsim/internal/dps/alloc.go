package dps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"time"
)

// allocation is the allocation policy's answer.
type allocation struct {
	hub     string
	twin    *InitialTwin // from a custom webhook
	payload []byte       // from a custom webhook
}

// linkedHubs are the enrollment's iotHubs, else every hub of the instance.
func (s *Service) linkedHubs(c enrollmentCommon) []string {
	if len(c.IoTHubs) > 0 {
		return append([]string(nil), c.IoTHubs...)
	}
	return s.cfg.Hubs.HostNames()
}

func (s *Service) allocate(ctx context.Context, m *match, rc DeviceRuntimeContext, remote string) (allocation, error) {
	c := m.common
	linked := s.linkedHubs(c)
	policy := c.AllocationPolicy
	if policy == "" {
		policy = s.cfg.DefaultAllocationPolicy
		if c.IoTHubHostName != "" {
			policy = AllocationStatic
		}
	}
	if len(linked) == 0 && !(policy == AllocationStatic && c.IoTHubHostName != "") {
		return allocation{}, errNoHubs
	}
	switch policy {
	case AllocationStatic:
		switch {
		case len(c.IoTHubs) == 1:
			return allocation{hub: c.IoTHubs[0]}, nil
		case c.IoTHubHostName != "":
			return allocation{hub: c.IoTHubHostName}, nil
		case len(linked) == 1:
			return allocation{hub: linked[0]}, nil
		}
		return allocation{}, fmt.Errorf("static allocation needs exactly one hub, have %d", len(linked))
	case AllocationGeoLatency:
		region := s.deviceRegion(rc.RegistrationID, remote)
		var near []string
		if region != "" {
			for _, h := range linked {
				if strings.EqualFold(s.cfg.HubRegions[h], region) {
					near = append(near, h)
				}
			}
		}
		if len(near) == 0 {
			near = linked
		}
		return allocation{hub: s.hashed(near, rc.RegistrationID)}, nil
	case AllocationCustom:
		return s.callWebhook(ctx, m, rc, linked)
	}
	return allocation{hub: s.hashed(linked, rc.RegistrationID)}, nil
}

// hashed picks a hub by weighted rendezvous hashing of the registration ID:
// stable for a device, even across hubs, and adding a hub moves only the
// devices that land on it.
func (s *Service) hashed(hubs []string, regID string) string {
	best, bestScore := "", math.Inf(-1)
	for _, h := range hubs {
		f := fnv.New64a()
		f.Write([]byte(strings.ToLower(h)))
		f.Write([]byte{0})
		f.Write([]byte(strings.ToLower(regID)))
		// Uniform in (0,1), then the weighted score -w/ln(u).
		u := (float64(mix64(f.Sum64())>>11) + 0.5) / (1 << 53)
		w := 1.0
		if v := s.cfg.HubWeights[h]; v > 0 {
			w = float64(v)
		}
		score := -w / math.Log(u)
		if score > bestScore {
			best, bestScore = h, score
		}
	}
	return best
}

// mix64 is the splitmix64 finalizer: FNV alone spreads a changed last byte
// poorly into the high bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// deviceRegion is the device's region for geoLatency: DeviceRegions first,
// then the first SourceRegions entry (IP or CIDR) matching the client address.
func (s *Service) deviceRegion(regID, remote string) string {
	for id, r := range s.cfg.DeviceRegions {
		if strings.EqualFold(id, regID) {
			return r
		}
	}
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return ""
	}
	for _, k := range sortedKeys(s.cfg.SourceRegions) {
		if strings.Contains(k, "/") {
			if _, n, err := net.ParseCIDR(k); err == nil && n.Contains(ip) {
				return s.cfg.SourceRegions[k]
			}
		} else if other := net.ParseIP(k); other != nil && other.Equal(ip) {
			return s.cfg.SourceRegions[k]
		}
	}
	return ""
}

const webhookTimeout = 30 * time.Second

// callWebhook POSTs the AllocationRequest to the enrollment's webhook.
// [MicrosoftDocs/azure-docs articles/iot-dps/concepts-custom-allocation.md]
func (s *Service) callWebhook(ctx context.Context, m *match, rc DeviceRuntimeContext, linked []string) (allocation, error) {
	def := m.common.Custom
	if def == nil || def.WebhookURL == "" {
		return allocation{}, fmt.Errorf("custom allocation without a webhook")
	}
	req := AllocationRequest{DeviceRuntimeContext: rc, LinkedHubs: linked}
	// The enrollment travels without key material, as in the doc's example.
	if m.enrollment != nil {
		e := deepCopy(m.enrollment)
		e.Attestation = &AttestationMechanism{Type: e.Attestation.Type}
		e.RegistrationState = nil
		req.IndividualEnrollment = e
	} else {
		g := deepCopy(m.group)
		g.Attestation = &AttestationMechanism{Type: g.Attestation.Type}
		req.EnrollmentGroup = g
	}
	body, err := json.Marshal(req)
	if err != nil {
		return allocation{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	// Also stop when the service closes.
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, def.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return allocation{}, fmt.Errorf("webhook request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	hr.Header.Set("Accept", "application/json")
	resp, err := s.httpClient.Do(hr)
	if err != nil {
		return allocation{}, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return allocation{}, fmt.Errorf("webhook: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return allocation{}, fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	var ar AllocationResponse
	if err := json.Unmarshal(rb, &ar); err != nil {
		return allocation{}, fmt.Errorf("webhook answer is not an AllocationResponse: %w", err)
	}
	hub := ""
	for _, h := range linked {
		if strings.EqualFold(h, strings.TrimSpace(ar.IoTHubHostName)) {
			hub = h
		}
	}
	if hub == "" {
		return allocation{}, fmt.Errorf("webhook chose %q, which is not a linked hub", ar.IoTHubHostName)
	}
	a := allocation{hub: hub, twin: ar.InitialTwin}
	if !isJSONNull(ar.Payload) {
		a.payload = ar.Payload
	}
	return a, nil
}
