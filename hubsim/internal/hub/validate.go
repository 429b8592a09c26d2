package hub

import "fmt"

// maxNameLen bounds method and stream names. Azure documents no figure for
// them; hubsim uses the id limit (128) so that a name can never be large
// enough to matter in a topic, a log line or an error body.
const maxNameLen = 128

// validName reports whether a method or stream name is acceptable: 1..128
// printable ASCII characters that fit in one MQTT topic level and a topic
// query (no '/', '#', '+', '?', '&', blanks or controls).
func validName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return validTopicLevel(name)
}

// maxEcho bounds how much of a rejected input an error message repeats.
const maxEcho = 64

// echo quotes s for an error message, cut to maxEcho bytes with its full
// length noted, so a huge input never comes back in the answer.
func echo(s string) string {
	if len(s) <= maxEcho {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:maxEcho], len(s))
}

// pathInputError checks the ids in a REST path (after /devices/ or /twins/,
// and after /modules/) and returns the 400 message for the first bad one, or
// "" when they are fine. It runs before any lookup, so a bad id answers 400
// ArgumentInvalid, not 404, and is never echoed in full.
func pathInputError(p []string) string {
	if len(p) < 2 || (p[0] != "devices" && p[0] != "twins") || (p[0] == "devices" && len(p) == 2 && p[1] == "query") {
		return ""
	}
	if !validID(p[1]) {
		return "invalid device id " + echo(p[1]) + ": want 1-128 ASCII letters, digits or - . % _ * ? ! ( ) , : = @ $ '"
	}
	if len(p) >= 4 && p[2] == "modules" && !validID(p[3]) {
		return "invalid module id " + echo(p[3]) + ": want 1-128 ASCII letters, digits or - . % _ * ? ! ( ) , : = @ $ '"
	}
	return ""
}

// nameError is the message for a bad method or stream name.
func nameError(kind, name string) string {
	return fmt.Sprintf("invalid %s name %s: want 1-%d printable ASCII characters without / # + ? & or blanks", kind, echo(name), maxNameLen)
}
