package broker

import (
	"strings"
	"testing"
)

func TestValidFilter(t *testing.T) {
	tests := map[string]bool{
		"#":                      true,
		"$iothub/twin/res/#":     true,
		"devices/+/messages/#":   true,
		"+":                      true,
		"a//b":                   true,
		"/":                      true,
		"":                       false,
		"a/#/b":                  false,
		"a#":                     false,
		"a/b#":                   false,
		"a+/b":                   false,
		"a/+b":                   false,
		"##":                     false,
		"a/\x00":                 false,
		"$iothub/streams/POST/#": true,
	}
	for f, want := range tests {
		if got := validFilter(f); got != want {
			t.Errorf("validFilter(%q) = %v, want %v", f, got, want)
		}
	}
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1", true},
		{"$iothub/twin/res/#", "$iothub/twin/res", true}, // '#' includes the parent level
		{"$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/?$version=2", false},
		{"$iothub/methods/POST/#", "$iothub/methods/POST/reboot/?$rid=7", true},
		{"$iothub/streams/POST/#", "$iothub/streams/POST/ssh/?$rid=1&$url=wss%3A%2F%2Fh%3A443%2Fx&$auth=tok", true},
		{"devices/dev1/messages/devicebound/#", "devices/dev1/messages/devicebound/%24.mid=1", true},
		{"devices/dev1/messages/devicebound/#", "devices/dev2/messages/devicebound/x", false},
		{"devices/+/messages/#", "devices/dev1/messages/events/", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a/", true},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a/b/c", "a/b", false},
		{"#", "a/b", true},
		{"#", "$iothub/twin/res/200", false}, // wildcards never match $-topics at the first level
		{"+/twin/res/#", "$iothub/twin/res/200", false},
		{"+/+", "/a", true},
	}
	for _, tt := range tests {
		if got := matchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

// FuzzMatchTopic checks matching against a slow reference on level slices.
func FuzzMatchTopic(f *testing.F) {
	f.Add("$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1")
	f.Add("a/+/c", "a/b/c")
	f.Add("#", "$SYS/x")
	f.Add("a/#", "a")
	f.Add("+/+", "/")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if !validFilter(filter) || !validTopicName(topic) {
			return
		}
		if got, want := matchTopic(filter, topic), refMatch(filter, topic); got != want {
			t.Fatalf("matchTopic(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
	})
}

func refMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}
