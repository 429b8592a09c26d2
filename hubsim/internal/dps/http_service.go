package dps

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

// serviceRoutes are the service API's routes (api-version 2021-10-01 shapes,
// any api-version accepted) [Azure/azure-rest-api-specs specification/
// deviceprovisioningservices/data-plane/Microsoft.Devices/stable/2021-10-01/service.json],
// in the spellings the official service clients send
// [Azure/azure-iot-sdk-node provisioning/service/src/provisioningserviceclient.ts],
// [Azure/azure-iot-sdk-c provisioning_service_client/src/provisioning_service_client.c],
// [Azure/azure-iot-sdk-csharp provisioning/service/src (IndividualEnrollmentsClient.cs,
// EnrollmentGroupsClient.cs)]. Each route names the shared access policy
// right its caller's SAS (resource ServiceHost, one of Config.Policies)
// must carry [MicrosoftDocs/azure-docs articles/iot-dps/how-to-control-access.md].
func (s *Service) serviceRoutes() []httpRoute {
	var rs []httpRoute
	rs = append(rs, enrollmentsKind.routes(s, "/"+segEnrollments)...)
	rs = append(rs, groupsKind.routes(s, "/"+segEnrollmentGroups)...)
	rs = append(rs,
		// Node's getEnrollmentGroupAttestationMechanism spells the
		// collection in lower case (its other group calls do not).
		s.serviceRoute(http.MethodPost, "/"+segEnrollmentGroupsNode+"/{id}/"+segAttestationMechanism, RightEnrollmentRead, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			groupsKind.serveAttestation(s, w, r.PathValue("id"))
		}),
		s.serviceRoute(http.MethodGet, "/"+segRegistrations+"/{id}", RightRegistrationStatusRead, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			st, ok := s.RegistrationState(r.PathValue("id"))
			if !ok {
				s.writeServiceResult(w, 0, nil, ErrNotFound)
				return
			}
			s.writeServiceResult(w, http.StatusOK, st, nil)
		}),
		s.serviceRoute(http.MethodDelete, "/"+segRegistrations+"/{id}", RightRegistrationStatusWrite, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			s.writeServiceResult(w, http.StatusNoContent, nil, s.DeleteRegistrationState(r.PathValue("id"), r.Header.Get("If-Match")))
		}),
		s.serviceRoute(http.MethodPost, "/"+segRegistrations+"/{id}/"+segQuery, RightRegistrationStatusRead, func(w http.ResponseWriter, r *http.Request, b []byte) {
			s.serveQuery(w, r, b, collRegistrations, r.PathValue("id"))
		}),
	)
	return rs
}

// routes are the routes of k's collection under prefix. The bulk operation
// is POST on the collection: C# sends /enrollments, Node and C send
// /enrollments/ (PROTOCOL.md §4).
func (k enrollmentKind[T, P]) routes(s *Service, prefix string) []httpRoute {
	coll := collEnrollments
	if k.group {
		coll = collEnrollmentGroups
	}
	bulk := func(w http.ResponseWriter, _ *http.Request, b []byte) { k.serveBulk(s, w, b) }
	return []httpRoute{
		s.serviceRoute(http.MethodPost, prefix, RightEnrollmentWrite, bulk),
		s.serviceRoute(http.MethodPost, prefix+"/{$}", RightEnrollmentWrite, bulk),
		s.serviceRoute(http.MethodPost, prefix+"/"+segQuery, RightEnrollmentRead, func(w http.ResponseWriter, r *http.Request, b []byte) {
			s.serveQuery(w, r, b, coll, "")
		}),
		s.serviceRoute(http.MethodGet, prefix+"/{id}", RightEnrollmentRead, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			k.serveGet(s, w, r.PathValue("id"))
		}),
		s.serviceRoute(http.MethodPut, prefix+"/{id}", RightEnrollmentWrite, func(w http.ResponseWriter, r *http.Request, b []byte) {
			k.servePut(s, w, r, b, r.PathValue("id"))
		}),
		s.serviceRoute(http.MethodDelete, prefix+"/{id}", RightEnrollmentWrite, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			id := r.PathValue("id")
			var err error
			if k.group {
				err = s.DeleteEnrollmentGroup(id, r.Header.Get("If-Match"))
			} else {
				err = s.DeleteEnrollment(id, r.Header.Get("If-Match"))
			}
			s.writeServiceResult(w, http.StatusNoContent, nil, err)
		}),
		s.serviceRoute(http.MethodPost, prefix+"/{id}/"+segAttestationMechanism, RightEnrollmentRead, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			k.serveAttestation(s, w, r.PathValue("id"))
		}),
	}
}

// maxServiceBody bounds service API request bodies (a bulk operation of 10
// enrollments with certificates fits many times over).
const maxServiceBody = 4 << 20

// serviceRoute is a service API route: the caller's SAS must name a policy
// holding need, checked before the body is read; anything else answers 401
// as DPS does.
func (s *Service) serviceRoute(method, path, need string, handle func(w http.ResponseWriter, r *http.Request, body []byte)) httpRoute {
	return httpRoute{method: method, path: path, right: need, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		if _, err := sas.VerifyPolicy(r.Header.Get("Authorization"), s.cfg.ServiceHost, s.cfg.Policies, need, now); err != nil {
			s.log.Info("dps: service request not authorized", "path", r.URL.Path, "err", err)
			writeReply(w, errReply(http.StatusUnauthorized, codeUnauthorized, "Unauthorized", now))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxServiceBody))
		if err != nil {
			writeReply(w, errReply(http.StatusBadRequest, codeBadRequest, "could not read the request body", now))
			return
		}
		handle(w, r, body)
	})}
}

func (s *Service) writeServiceResult(w http.ResponseWriter, status int, v any, err error) {
	now := s.now()
	switch {
	case err == nil:
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		writeReply(w, reply{status: status, body: v})
	case errors.Is(err, ErrNotFound):
		writeReply(w, errReply(http.StatusNotFound, codeNotFound, "not found", now))
	case errors.Is(err, ErrPreconditionFailed):
		writeReply(w, errReply(http.StatusPreconditionFailed, codePreconditionFailed, "etag mismatch", now))
	case errors.Is(err, errConflict):
		writeReply(w, errReply(http.StatusConflict, codeConflict, err.Error(), now))
	case errors.Is(err, ErrInvalid):
		writeReply(w, errReply(http.StatusBadRequest, codeBadRequest, err.Error(), now))
	default:
		writeReply(w, errReply(http.StatusInternalServerError, codeInternal, "internal error", now))
	}
}

var errConflict = errors.New("dps: already exists")

func (k enrollmentKind[T, P]) serveGet(s *Service, w http.ResponseWriter, id string) {
	v, ok := k.get(s, id)
	if !ok {
		s.writeServiceResult(w, 0, nil, ErrNotFound)
		return
	}
	s.writeServiceResult(w, http.StatusOK, v, nil)
}

func (k enrollmentKind[T, P]) servePut(s *Service, w http.ResponseWriter, r *http.Request, body []byte, id string) {
	ifMatch := r.Header.Get("If-Match")
	var in T
	if err := json.Unmarshal(body, &in); err != nil {
		s.writeServiceResult(w, 0, nil, ErrInvalid)
		return
	}
	if P(&in).common().ID == "" {
		P(&in).setID(id)
	}
	if !strings.EqualFold(P(&in).common().ID, id) {
		s.writeServiceResult(w, 0, nil, errors.Join(ErrInvalid, errors.New(k.idName+" does not match the path")))
		return
	}
	out, err := k.put(s, in, ifMatch)
	s.writeServiceResult(w, http.StatusOK, out, err)
}

func (k enrollmentKind[T, P]) serveAttestation(s *Service, w http.ResponseWriter, id string) {
	var att *AttestationMechanism
	if v, ok := k.get(s, id); ok {
		att = P(&v).common().Attestation
	}
	if att == nil {
		s.writeServiceResult(w, 0, nil, ErrNotFound)
		return
	}
	s.writeServiceResult(w, http.StatusOK, att, nil)
}

const (
	defaultPageSize = 100
	maxBulkItems    = 10 // service.json: "maximum 10" per bulk operation [?]
)

// serveQuery answers a query with every item of the collection (hubsim
// ignores the query text), paged by x-ms-max-item-count; the continuation
// header is present only while more pages follow, as the Node client's
// hasMoreResults reads it [Azure/azure-iot-sdk-node provisioning/service/src/query.ts].
func (s *Service) serveQuery(w http.ResponseWriter, r *http.Request, body []byte, coll, groupID string) {
	var q QuerySpecification
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &q); err != nil {
			s.writeServiceResult(w, 0, nil, ErrInvalid)
			return
		}
	}
	var items []any
	itemType := itemTypeEnrollment
	switch coll {
	case collEnrollments:
		for _, e := range s.Enrollments() {
			items = append(items, e)
		}
	case collEnrollmentGroups:
		itemType = itemTypeEnrollmentGroup
		for _, g := range s.EnrollmentGroups() {
			items = append(items, g)
		}
	default:
		itemType = itemTypeRegistrationState
		for _, st := range s.RegistrationStates(groupID) {
			items = append(items, st)
		}
	}
	size := defaultPageSize
	if v := r.Header.Get(headerMaxItemCount); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			s.writeServiceResult(w, 0, nil, errors.Join(ErrInvalid, errors.New("bad x-ms-max-item-count")))
			return
		}
		size = n
	}
	start := 0
	if c := r.Header.Get(headerContinuation); c != "" {
		n, err := decodeContinuation(c)
		if err != nil {
			s.writeServiceResult(w, 0, nil, errors.Join(ErrInvalid, errors.New("bad x-ms-continuation")))
			return
		}
		start = n
	}
	if start > len(items) {
		start = len(items)
	}
	end := min(start+size, len(items))
	page := items[start:end]
	if page == nil {
		page = []any{}
	}
	h := w.Header()
	h.Set(headerItemType, itemType)
	h.Set(headerMaxItemCount, strconv.Itoa(size))
	if end < len(items) {
		h.Set(headerContinuation, encodeContinuation(end))
	}
	writeReply(w, reply{status: http.StatusOK, body: page})
}

func encodeContinuation(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(n)))
}

func decodeContinuation(c string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, errors.New("not a continuation token")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("not a continuation token")
	}
	return n, nil
}

func (k enrollmentKind[T, P]) serveBulk(s *Service, w http.ResponseWriter, body []byte) {
	var res BulkEnrollmentOperationResult
	res.Errors = []BulkEnrollmentOperationError{}
	addErr := func(id string, err error) {
		code, status := codeBadRequest, "BadRequest"
		switch {
		case errors.Is(err, ErrNotFound):
			code, status = codeNotFound, "NotFound"
		case errors.Is(err, ErrPreconditionFailed):
			code, status = codePreconditionFailed, "PreconditionFailed"
		case errors.Is(err, errConflict):
			code, status = codeConflict, "Conflict"
		}
		e := BulkEnrollmentOperationError{ErrorCode: code, ErrorStatus: status + ": " + err.Error()}
		if k.group {
			e.EnrollmentGroupID = id
		} else {
			e.RegistrationID = id
		}
		res.Errors = append(res.Errors, e)
	}
	items, mode, err := k.decodeBulk(body)
	if err != nil || len(items) == 0 || len(items) > maxBulkItems || !validBulkMode(mode) {
		s.writeServiceResult(w, 0, nil, errors.Join(ErrInvalid, errors.New("bad bulk operation")))
		return
	}
	for _, item := range items {
		id, etag := P(&item).common().ID, P(&item).meta().ETag
		var err error
		switch mode {
		case BulkCreate:
			if _, exists := k.get(s, id); exists {
				err = errConflict
			} else {
				_, err = k.put(s, item, "")
			}
		case BulkUpdate:
			_, err = k.put(s, item, "")
		case BulkUpdateIfMatchETag:
			_, err = k.put(s, item, orStar(etag))
		case BulkDelete:
			err = k.del(s, id, etag)
		}
		if err != nil {
			addErr(id, err)
		}
	}
	res.IsSuccessful = len(res.Errors) == 0
	writeReply(w, reply{status: http.StatusOK, body: res})
}

func validBulkMode(m string) bool {
	switch m {
	case BulkCreate, BulkUpdate, BulkUpdateIfMatchETag, BulkDelete:
		return true
	}
	return false
}

// orStar turns an empty etag into "*" so updateIfMatchETag without an etag
// still requires the enrollment to exist.
func orStar(etag string) string {
	if etag == "" {
		return "*"
	}
	return etag
}
