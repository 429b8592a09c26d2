// Package muxpath holds the two path rules hubsim's HTTP front ends (the
// server's router, the hub REST API and the admin API, each usable on its
// own mux) share so that they answer a path alike:
//
//   - Serves: net/http's ServeMux redirects a path with empty, "." or ".."
//     segments to its cleaned form; Azure never redirects, so such paths
//     must be answered (404 in the API's own shape) before the mux sees
//     them.
//   - TrimTrailingSlash: the hub and admin APIs ignore trailing slashes
//     (the Node registry client lists devices with GET /devices/).
package muxpath
