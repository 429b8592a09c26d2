// Package ui is hubsim's browser dashboard under /hubsim/ui/: an overview
// of hubs, connections, telemetry rate, streams and DPS traffic with small
// inline SVG charts; a device list with twin view, desired-property edits,
// cloud-to-device messages, forced disconnects and enable/disable; a live
// telemetry tail; the fault switches; DPS counters.
//
// Pages are rendered on the server with html/template from files embedded
// in the binary (no build step, no CDN, works offline); one small script
// (assets/app.js) follows live counters and telemetry through server-sent
// events.
//
// The dashboard owns no simulator state: it reads and drives hubsim through
// the admin package's interfaces (admin.Hubs, admin.DPS, *admin.Faults)
// and two narrow additions of its own (Devices for the registry and twins,
// Streams for the streaming endpoint's counters). Access takes the admin
// credential of the admin API (the admin token from the status file, or an
// owner SAS), checked by the same admin.Authorizer; after the login form it
// lives in a server-side session named by an HttpOnly, Secure,
// SameSite=Strict cookie, and every state-changing request carries the
// session's CSRF token. Only the login form is served without a session.
package ui
