package dps

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const maxBody = 96 << 10 // DPS's maximum message size, MicrosoftDocs/azure-docs includes/iot-dps-limits.md

// DeviceHandler serves the device API under /{idScope}/registrations/…:
//
//	PUT  /{scope}/registrations/{regId}/register
//	GET  /{scope}/registrations/{regId}/operations/{operationId}
//	POST /{scope}/registrations/{regId}
//
// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/
// data-plane/DeviceProvisioningServices/device/routes.tsp]. Any api-version is
// accepted. A device authenticates with a SAS in Authorization or, with no
// Authorization header, with its TLS client certificate.
func (s *Service) DeviceHandler() http.Handler {
	return http.HandlerFunc(s.serveDevice)
}

func splitPath(r *http.Request) ([]string, bool) {
	raw := strings.Trim(r.URL.EscapedPath(), "/")
	parts := strings.Split(raw, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

func (s *Service) serveDevice(w http.ResponseWriter, r *http.Request) {
	parts, ok := splitPath(r)
	req := deviceRequest{transport: "https", remote: r.RemoteAddr, apiVersion: r.URL.Query().Get("api-version")}
	switch {
	case !ok || len(parts) < 3 || parts[1] != "registrations":
		ok = false
	case len(parts) == 4 && parts[3] == "register" && r.Method == http.MethodPut:
		req.kind = kindRegister
	case len(parts) == 5 && parts[3] == "operations" && r.Method == http.MethodGet:
		req.kind, req.operationID = kindPoll, parts[4]
	case len(parts) == 3 && r.Method == http.MethodPost:
		req.kind = kindLookup
	default:
		ok = false
	}
	if !ok {
		s.recordUnhandled(r.Method + " " + r.URL.Path)
		writeReply(w, errReply(http.StatusNotFound, codeNotFound, "no such device API route", s.now()))
		return
	}
	req.scope, req.regID = parts[0], parts[2]
	if auth := r.Header.Get("Authorization"); auth != "" {
		req.creds.SAS = auth
	} else if r.TLS != nil {
		req.creds.Certs = r.TLS.PeerCertificates
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeReply(w, errReply(http.StatusBadRequest, codeBadRequest, "could not read the request body", s.now()))
		return
	}
	if len(body) > maxBody {
		writeReply(w, errReply(http.StatusRequestEntityTooLarge, 413000, "request body too large", s.now()))
		return
	}
	req.body = body
	writeReply(w, s.handleDevice(r.Context(), req))
}

// writeReply renders a reply as JSON with the DPS headers.
func writeReply(w http.ResponseWriter, rp reply) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if rp.retryAfter > 0 {
		h.Set(headerRetryAfter, strconv.Itoa(rp.retryAfter))
	}
	if rp.errorCode != 0 {
		h.Set(headerErrorCode, strconv.Itoa(rp.errorCode))
	}
	b, err := json.Marshal(rp.body)
	if err != nil {
		b = []byte(`{}`)
	}
	w.WriteHeader(rp.status)
	_, _ = w.Write(b)
}
