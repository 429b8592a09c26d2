package dps

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

const maxBody = 96 << 10 // DPS's maximum message size, MicrosoftDocs/azure-docs includes/iot-dps-limits.md

// deviceRoutes are the device API's routes for each ID scope
// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/
// data-plane/DeviceProvisioningServices/device/routes.tsp], as the official
// device clients send them [Azure/azure-iot-sdk-c
// provisioning_client/src/prov_transport_http_client.c],
// [Azure/azure-iot-sdk-node provisioning/transport/http/src/http.ts],
// [Azure/azure-iot-sdk-csharp provisioning/transport/http/src/Generated/RuntimeRegistration.cs]:
//
//	PUT  /{scope}/registrations/{regId}/register
//	GET  /{scope}/registrations/{regId}/operations/{operationId}
//	POST /{scope}/registrations/{regId}
//
// The scope is a literal in each pattern: a wildcard first segment would
// overlap every service and hub route (see HTTPAPI). Any api-version is
// accepted. A device authenticates with a SAS in Authorization or, with no
// Authorization header, with its TLS client certificate; handleDevice
// checks either against the device's enrollment (RightDeviceRegistration).
func (s *Service) deviceRoutes() []httpRoute {
	var rs []httpRoute
	for _, scope := range s.cfg.IDScopes {
		base := "/" + scope + "/" + segRegistrations + "/{id}"
		rs = append(rs,
			s.deviceRoute(http.MethodPut, base+"/"+segRegister, scope, kindRegister),
			s.deviceRoute(http.MethodGet, base+"/"+segOperations+"/{op}", scope, kindPoll),
			s.deviceRoute(http.MethodPost, base, scope, kindLookup),
		)
	}
	return rs
}

func (s *Service) deviceRoute(method, path, scope string, kind opKind) httpRoute {
	return httpRoute{method: method, path: path, right: RightDeviceRegistration, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := deviceRequest{
			kind: kind, scope: scope, regID: r.PathValue("id"), operationID: r.PathValue("op"),
			transport: "https", remote: r.RemoteAddr, apiVersion: r.URL.Query().Get("api-version"),
		}
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
	})}
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
