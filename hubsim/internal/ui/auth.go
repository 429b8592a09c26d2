package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Session limits.
const (
	cookieName  = "hubsim_ui"
	sessionTTL  = 12 * time.Hour
	maxSessions = 256 // the oldest session goes when a new one would exceed this
	maxForm     = 64 << 10
)

// session is one logged-in browser. The credential stays on the server
// and is checked again on every request, so an expired SAS or a restarted
// hubsim (new admin token) ends the session.
type session struct {
	id, csrf   string
	credential string
	created    time.Time
}

type sessions struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: map[string]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create(credential string) *session {
	s := &session{id: randomToken(), csrf: randomToken(), credential: credential, created: ss.now()}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for len(ss.m) >= maxSessions {
		var oldest *session
		for _, o := range ss.m {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(ss.m, oldest.id)
	}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s != nil && ss.now().Sub(s.created) > sessionTTL {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

// authorization is the Authorization header value for a credential typed
// into the login form: an owner SAS as it is, anything else as the admin
// token.
func authorization(credential string) string {
	if strings.HasPrefix(credential, "SharedAccessSignature ") {
		return credential
	}
	return "Bearer " + credential
}

// check asks the admin Authorizer whether credential is accepted.
func (u *UI) check(r *http.Request, credential string) error {
	probe := r.Clone(r.Context())
	probe.Header = http.Header{}
	probe.Header.Set("Authorization", authorization(credential))
	return u.cfg.Auth.Check(probe)
}

// sessionOf returns the request's live session or nil.
func (u *UI) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	s := u.sess.get(c.Value)
	if s == nil {
		return nil
	}
	if err := u.check(r, s.credential); err != nil {
		u.sess.drop(s.id)
		return nil
	}
	return s
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

type pageFunc func(w http.ResponseWriter, r *http.Request, s *session)

// page serves h to a logged-in browser and sends anyone else to the login
// form (GET) or answers 401.
func (u *UI) page(h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		s := u.sessionOf(r)
		if s == nil {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		h(w, r, s)
	})
}

// mutating is page for state-changing requests: a same-origin request
// carrying the session's CSRF token (form field csrf).
func (u *UI) mutating(h pageFunc) http.Handler {
	return u.page(func(w http.ResponseWriter, r *http.Request, s *session) {
		if !readForm(w, r) {
			return
		}
		tok := r.PostForm.Get("csrf")
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
			http.Error(w, "missing or wrong CSRF token: reload the page", http.StatusForbidden)
			return
		}
		h(w, r, s)
	})
}

// readForm reads a posted form (at most maxForm bytes) from a request that
// is not cross-origin; on false it has answered 403 or 400.
func readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return false
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func sameOrigin(origin string, r *http.Request) bool {
	o, err := url.Parse(origin)
	return err == nil && o.Scheme == "https" && strings.EqualFold(o.Host, r.Host)
}

func (u *UI) loginForm(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	u.render(w, "login", &view{Title: "Log in", Next: safeNext(r.URL.Query().Get("next"))})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if !readForm(w, r) {
		return
	}
	cred := strings.TrimSpace(r.PostForm.Get("credential"))
	next := safeNext(r.PostForm.Get("next"))
	if err := u.check(r, cred); cred == "" || err != nil {
		u.log.Info("dashboard login refused", "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusUnauthorized)
		u.render(w, "login", &view{Title: "Log in", Next: next,
			Error: "That is neither hubsim's admin token (admin_token in the status file) nor a valid owner SAS."})
		return
	}
	s := u.sess.create(cred)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: Prefix, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) {
	u.sess.drop(s.id)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on the dashboard.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(next, Prefix) ||
		strings.Contains(next, "//") || strings.Contains(next, `\`) || strings.Contains(next, "/..") {
		return Prefix
	}
	return next
}
