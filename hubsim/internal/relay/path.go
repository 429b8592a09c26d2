package relay

import (
	"net/url"
	"strings"
)

// streamPath builds the URL path of a stream: every part is path-escaped so
// that device ids with reserved characters survive, and the id comes last.
//
//	/bridges/<hub>/<device>/<name>/<id>
//	/bridges/<hub>/<device>/modules/<module>/<name>/<id>
func streamPath(spec StreamSpec, id string) string {
	var b strings.Builder
	b.WriteString(pathPrefix)
	b.WriteString(url.PathEscape(spec.Hub))
	b.WriteByte('/')
	b.WriteString(url.PathEscape(spec.DeviceID))
	if spec.ModuleID != "" {
		b.WriteString("/" + modulesSegment + "/")
		b.WriteString(url.PathEscape(spec.ModuleID))
	}
	b.WriteByte('/')
	b.WriteString(url.PathEscape(spec.Name))
	b.WriteByte('/')
	b.WriteString(url.PathEscape(id))
	return b.String()
}

// parseStreamPath is the inverse of streamPath on an escaped request path.
func parseStreamPath(escaped string) (spec StreamSpec, id string, ok bool) {
	rest, found := strings.CutPrefix(escaped, pathPrefix)
	if !found {
		return StreamSpec{}, "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 4:
	case len(parts) == 6 && parts[2] == modulesSegment:
		parts = []string{parts[0], parts[1], parts[3], parts[4], parts[5]}
	default:
		return StreamSpec{}, "", false
	}
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil || u == "" {
			return StreamSpec{}, "", false
		}
		parts[i] = u
	}
	spec.Hub, spec.DeviceID = parts[0], parts[1]
	if len(parts) == 5 {
		spec.ModuleID = parts[2]
	}
	spec.Name = parts[len(parts)-2]
	return spec, parts[len(parts)-1], true
}
