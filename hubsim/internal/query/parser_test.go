package query

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT * FROM devices", "SELECT * FROM devices"},
		{"select * from DEVICES.Modules", "SELECT * FROM devices.modules"},
		{"SELECT TOP 5 * FROM devices", "SELECT TOP 5 * FROM devices"},
		{"SELECT * FROM devices WHERE tags.location.region = 'US'",
			"SELECT * FROM devices WHERE tags.location.region = 'US'"},
		{`SELECT * FROM devices WHERE tags.a = "it's" AND properties.reported.x >= 60`,
			`SELECT * FROM devices WHERE (tags.a = 'it\'s') AND (properties.reported.x >= 60)`},
		{"SELECT * FROM devices WHERE a = 1 OR b = 2 AND NOT c = 3",
			"SELECT * FROM devices WHERE (a = 1) OR ((b = 2) AND (NOT (c = 3)))"},
		{"SELECT * FROM devices WHERE (a = 1 OR b = 2) AND c <> 3",
			"SELECT * FROM devices WHERE ((a = 1) OR (b = 2)) AND (c <> 3)"},
		{"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']",
			"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']"},
		{"SELECT * FROM devices WHERE tags.n NIN [1, -2.5, 0x10, true, null]",
			"SELECT * FROM devices WHERE tags.n NIN [1, -2.5, 16, true, null]"},
		{"SELECT * FROM devices WHERE is_defined(properties.reported.connectivity)",
			"SELECT * FROM devices WHERE IS_DEFINED(properties.reported.connectivity)"},
		{"SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'dev') AND endswith(DeviceId, 'a')",
			"SELECT * FROM devices WHERE (STARTSWITH(deviceId, 'dev')) AND (ENDSWITH(deviceId, 'a'))"},
		{"SELECT DeviceID, LastActivityTime FROM devices WHERE status = 'enabled'",
			"SELECT deviceId, lastActivityTime FROM devices WHERE status = 'enabled'"},
		{"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
			"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status"},
		{"SELECT COUNT() AS n, avg(tags.x) FROM devices", "SELECT COUNT() AS n, AVG(tags.x) FROM devices"},
		{"SELECT * FROM devices WHERE capabilities.iotEdge", "SELECT * FROM devices WHERE capabilities.iotEdge"},
		{"SELECT * FROM devices WHERE 5 < tags.floor", "SELECT * FROM devices WHERE 5 < tags.floor"},
		{"SELECT * FROM devices WHERE properties.desired.x = properties.reported.x",
			"SELECT * FROM devices WHERE properties.desired.x = properties.reported.x"},
		{"SELECT * FROM devices WHERE tags.from.where = 1e3", "SELECT * FROM devices WHERE tags.from.where = 1000"},
		{"SELECT * FROM devices WHERE tags.s = '\\u00e9\\\\'", "SELECT * FROM devices WHERE tags.s = 'é\\\\'"},
		{"SELECT * FROM devices WHERE properties.desired.$version > 2", "SELECT * FROM devices WHERE properties.desired.$version > 2"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := q.String(); got != tt.want {
				t.Fatalf("String()\n got %s\nwant %s", got, tt.want)
			}
			q2, err := Parse(q.String())
			if err != nil || q2.String() != tt.want {
				t.Fatalf("reparse of %q: %v %v", tt.want, q2, err)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		in          string
		unsupported bool
		msg         string
	}{
		{"", false, "expected SELECT"},
		{"SELECT FROM devices", false, "expected a property path"},
		{"SELECT * FROM things", false, `unknown collection "things"`},
		{"SELECT * FROM devices.jobs", true, "devices.jobs"},
		{"SELECT * FROM devices WHERE", false, "found end of query"},
		{"SELECT * FROM devices WHERE tags.a = 'x", false, "unterminated string"},
		{"SELECT * FROM devices WHERE tags.a = 'x\\n'", false, "unsupported escape"},
		{"SELECT * FROM devices WHERE tags.a + 1 = 2", true, "arithmetic"},
		{"SELECT * FROM devices WHERE tags.a IN ('x', 'y')", false, "square brackets"},
		{"SELECT * FROM devices WHERE tags.a NOT IN ['x']", true, "NIN"},
		{"SELECT * FROM devices WHERE LOWER(tags.a) = 'x'", true, "LOWER"},
		{"SELECT * FROM devices WHERE CONTAINS(tags.a, 'x')", true, "CONTAINS"},
		{"SELECT * FROM devices WHERE FOO(tags.a)", false, "unknown function"},
		{"SELECT * FROM devices WHERE STARTSWITH(tags.a, tags.b)", true, "not a string constant"},
		{"SELECT * FROM devices WHERE tags.list[0] = 1", true, "array indexing"},
		{"SELECT * FROM devices WHERE tags.a = undefined", true, "undefined"},
		{"SELECT * FROM devices WHERE 1 = 1", true, "two constants"},
		{"SELECT * FROM devices ORDER BY deviceId", true, "ORDER BY"},
		{"SELECT * FROM devices GROUP BY tags.a", false, "SELECT * cannot be combined"},
		{"SELECT tags.a, COUNT() FROM devices", false, "not in GROUP BY"},
		{"SELECT tags.a, tags.b FROM devices GROUP BY tags.a", false, "tags.b is selected"},
		{"SELECT tags.a, properties.a FROM devices", false, "two projections are named"},
		{"SELECT COUNT(deviceId) FROM devices", false, "COUNT takes no argument"},
		{"SELECT TOP x * FROM devices", false, "TOP needs"},
		{"SELECT * FROM devices WHERE tags.a = 1 extra", false, "expected end of query"},
		{"SELECT * FROM devices WHERE tags.a = 1e999", false, "out of range"},
		{"SELECT * FROM devices WHERE tags.a = 12abc", false, "after number"},
		{"SELECT * FROM devices WHERE tags.a # 1", false, "unexpected character"},
		{"SELECT * FROM devices WHERE " + strings.Repeat("(", 100) + "a = 1" + strings.Repeat(")", 100), false, "nested deeper"},
		{"SELECT * FROM devices WHERE a = '" + strings.Repeat("x", MaxQueryLength) + "'", false, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			var qe *Error
			if !errors.As(err, &qe) || !errors.Is(err, ErrQuery) {
				t.Fatalf("Parse: %v, want a *query.Error", err)
			}
			if qe.Unsupported != tt.unsupported || !strings.Contains(qe.Error(), tt.msg) {
				t.Fatalf("error %q (unsupported %v), want %q (unsupported %v)", qe, qe.Unsupported, tt.msg, tt.unsupported)
			}
		})
	}
}
