package query

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// FuzzQuery: Parse never panics; what it accepts round-trips through
// String to an equal Query, compiles to SQL SQLite accepts, and runs
// without any error but a bad query. What it refuses is an *Error.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM devices",
		"SELECT TOP 3 * FROM devices.modules WHERE tags.a = 'x' AND NOT (properties.reported.b >= 2.5 OR status <> 'enabled')",
		"SELECT deviceId, tags.site AS s FROM devices WHERE tags.site IN ['a', \"b\", 1, true, null] AND tags.x NIN [-1]",
		"SELECT tags.site AS site, COUNT() AS n, SUM(tags.f), AVG(tags.f), MIN(tags.f), MAX(tags.f) FROM devices GROUP BY tags.site",
		"SELECT * FROM devices WHERE IS_DEFINED(tags.a) OR STARTSWITH(deviceId, 'd') OR ENDS_WITH(deviceId, '\\u0041\\'')",
		"SELECT * FROM devices WHERE properties.desired.x = properties.reported.x",
		"SELECT * FROM devices WHERE capabilities.iotEdge AND 0x1F < tags.n",
		"SELECT * FROM devices WHERE tags.a + 1 = 2",
		"SELECT * FROM devices ORDER BY deviceId",
		"select count() from devices where .5 = tags.a",
	} {
		f.Add(s)
	}
	db := openFixture(f, f.TempDir())
	f.Fuzz(func(t *testing.T, text string) {
		q, err := Parse(text)
		if err != nil {
			var qe *Error
			if !errors.As(err, &qe) || !errors.Is(err, ErrQuery) {
				t.Fatalf("Parse(%q) error %T %v is not a *query.Error", text, err, err)
			}
			return
		}
		canon := q.String()
		q2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, text, err)
		}
		if !reflect.DeepEqual(q, q2) || q2.String() != canon {
			t.Fatalf("round trip of %q:\n%#v\n%#v", text, q, q2)
		}
		if _, err := Run(context.Background(), db, "h1", q, Page{MaxItems: 2}); err != nil {
			t.Fatalf("Run(%q): %v", canon, err)
		}
	})
}
