package muxpath

import (
	"net/http"
	"strings"
)

// Serves reports whether http.ServeMux takes the escaped path p as it is,
// without redirecting: p starts with "/" and has no empty, "." or ".."
// segment.
func Serves(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// TrimTrailingSlash returns r with its path's trailing slashes removed (a
// shallow copy; r itself is not changed), or r when its path has none or
// is only slashes.
func TrimTrailingSlash(r *http.Request) *http.Request {
	p := r.URL.EscapedPath()
	if !strings.HasSuffix(p, "/") || strings.Trim(p, "/") == "" {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = strings.TrimRight(r.URL.Path, "/"), strings.TrimRight(r.URL.RawPath, "/")
	return r2
}
