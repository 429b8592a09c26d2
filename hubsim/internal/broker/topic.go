package broker

import "strings"

// MQTT 3.1.1 §4.7 topic rules: levels are separated by '/', '+' matches exactly
// one level, '#' matches the parent level and any number of child levels and
// must be the last level, and a filter starting with a wildcard never matches
// a topic name starting with '$' (§4.7.2). So "$iothub/twin/res/#" matches
// "$iothub/twin/res/200/?$rid=1", but "#" and "+/twin/res/#" do not.

// validFilter reports whether f is a well-formed topic filter.
func validFilter(f string) bool {
	if f == "" || strings.IndexByte(f, 0) >= 0 {
		return false
	}
	levels := strings.Split(f, "/")
	for i, lvl := range levels {
		switch {
		case lvl == "#":
			if i != len(levels)-1 {
				return false
			}
		case lvl == "+":
		case strings.ContainsAny(lvl, "#+"):
			return false
		}
	}
	return true
}

// validTopicName reports whether t may be used as the topic of a PUBLISH:
// non-empty, no wildcards, no NUL (MQTT 3.1.1 §4.7.3, §1.5.3).
func validTopicName(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00")
}

// matchTopic reports whether topic name t matches filter f. Both are assumed
// valid (validFilter, validTopicName).
func matchTopic(f, t string) bool {
	if strings.HasPrefix(t, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(t, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// topic ended; "a/#" also matches "a".
			return frest == "#"
		case !fmore:
			return false
		}
		f, t = frest, trest
	}
}
