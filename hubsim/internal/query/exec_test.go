package query

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestExecuteFilters(t *testing.T) {
	db := openFixture(t, t.TempDir())
	tests := []struct {
		q    string
		want []string
	}{
		{"SELECT * FROM devices", []string{"dev-a", "dev-b", "dev-c", "dev-d", "gw-1"}},
		{"SELECT * FROM devices.modules", []string{"dev-a/mod-x", "dev-a/mod-y"}},
		{"SELECT * FROM devices WHERE tags.site = 'north'", []string{"dev-a", "dev-b"}},
		{"SELECT * FROM devices WHERE tags.site != 'north'", []string{"dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE tags.site <> 'north'", []string{"dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE NOT (tags.site = 'north')", []string{"dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE deviceId = 'dev-b'", []string{"dev-b"}},
		{"SELECT * FROM devices WHERE DeviceID = 'dev-b'", []string{"dev-b"}},
		{"SELECT * FROM devices WHERE status = 'disabled'", []string{"dev-c"}},
		{"SELECT * FROM devices WHERE connectionState = 'Connected'", []string{"dev-a", "dev-d", "gw-1"}},
		// Numbers compare with numbers only: dev-c's floor is the string "2".
		{"SELECT * FROM devices WHERE tags.floor = 2", []string{"dev-b"}},
		{"SELECT * FROM devices WHERE tags.floor = '2'", []string{"dev-c"}},
		{"SELECT * FROM devices WHERE tags.floor >= 2", []string{"dev-b", "dev-d"}},
		{"SELECT * FROM devices WHERE 2 > tags.floor", []string{"dev-a"}},
		{"SELECT * FROM devices WHERE properties.reported.temp > 20.5", []string{"dev-a", "dev-b"}},
		{"SELECT * FROM devices WHERE properties.reported.temp < 21.5", []string{"dev-d"}},
		{"SELECT * FROM devices WHERE properties.reported.temp <= 21.5", []string{"dev-a", "dev-d"}},
		// Booleans: true is not the number 1.
		{"SELECT * FROM devices WHERE properties.reported.ok = true", []string{"dev-a"}},
		{"SELECT * FROM devices WHERE properties.reported.ok = 1", []string{}},
		{"SELECT * FROM devices WHERE properties.reported.ok", []string{"dev-a"}},
		// NOT of a non-Boolean stays undefined: only dev-b's false qualifies.
		{"SELECT * FROM devices WHERE NOT properties.reported.ok", []string{"dev-b"}},
		{"SELECT * FROM devices WHERE tags.site", []string{}},
		{"SELECT * FROM devices WHERE properties.reported.ok = false", []string{"dev-b"}},
		{"SELECT * FROM devices WHERE tags.note = null", []string{"dev-c"}},
		// null compares only with null: a string is neither = nor != null.
		{"SELECT * FROM devices WHERE tags.site != null", []string{}},
		{"SELECT * FROM devices WHERE tags.note != null", []string{}},
		// Objects and arrays never compare.
		{"SELECT * FROM devices WHERE tags.owner = 'ana'", []string{}},
		{"SELECT * FROM devices WHERE tags.list != 'x'", []string{}},
		{"SELECT * FROM devices WHERE tags.owner.name = 'ana'", []string{"dev-a"}},
		// Undefined stays undefined under NOT.
		{"SELECT * FROM devices WHERE NOT (properties.reported.fw = '1.0')", []string{"dev-d"}},
		{"SELECT * FROM devices WHERE tags.site = 'north' AND properties.reported.temp >= 25", []string{"dev-b"}},
		{"SELECT * FROM devices WHERE tags.site = 'south' OR properties.reported.temp < 20", []string{"dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE (tags.site = 'south' OR tags.site = 'north') AND NOT status = 'disabled'", []string{"dev-a", "dev-b"}},
		{"SELECT * FROM devices WHERE tags.site IN ['south', '50%_off']", []string{"dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE tags.floor IN [1, 3]", []string{"dev-a", "dev-d"}},
		{"SELECT * FROM devices WHERE tags.site NIN ['north']", []string{"dev-c", "dev-d"}},
		// Elements of another type simply do not match.
		{"SELECT * FROM devices WHERE tags.site NIN ['north', 1]", []string{"dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE tags.floor IN ['2', 3]", []string{"dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE tags.note IN [null]", []string{"dev-c"}},
		// Undefined, objects and arrays are neither in nor not in.
		{"SELECT * FROM devices WHERE tags.owner NIN ['x']", []string{}},
		{"SELECT * FROM devices WHERE tags.list NIN [1]", []string{}},
		{"SELECT * FROM devices WHERE tags.nothing NIN [1]", []string{}},
		{"SELECT * FROM devices WHERE IS_DEFINED(properties.reported.fw)", []string{"dev-a", "dev-b", "dev-d"}},
		{"SELECT * FROM devices WHERE IS_DEFINED(tags.note)", []string{"dev-c"}},
		{"SELECT * FROM devices WHERE NOT IS_DEFINED(tags.site)", []string{"gw-1"}},
		{"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'dev-')", []string{"dev-a", "dev-b", "dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE ENDSWITH(deviceId, '-1')", []string{"gw-1"}},
		{"SELECT * FROM devices WHERE STARTSWITH(tags.site, '50%')", []string{"dev-d"}},
		// % and _ are not wildcards.
		{"SELECT * FROM devices WHERE STARTSWITH(tags.site, '%')", []string{}},
		{"SELECT * FROM devices WHERE ENDSWITH(tags.site, '_')", []string{}},
		{"SELECT * FROM devices WHERE STARTSWITH(tags.floor, '2')", []string{"dev-c"}},
		{"SELECT * FROM devices WHERE STARTSWITH(tags.site, '')", []string{"dev-a", "dev-b", "dev-c", "dev-d"}},
		{"SELECT * FROM devices WHERE properties.desired.fw = properties.reported.fw", []string{"dev-a", "dev-d"}},
		{"SELECT * FROM devices WHERE properties.desired.fw != properties.reported.fw", []string{"dev-b"}},
		{"SELECT * FROM devices WHERE properties.desired.$version > 1", []string{"dev-a"}},
		{"SELECT * FROM devices.modules WHERE tags.role = 'edge'", []string{"dev-a/mod-x"}},
		{"SELECT * FROM devices.modules WHERE moduleId = 'mod-y'", []string{"dev-a/mod-y"}},
		{"SELECT TOP 2 * FROM devices", []string{"dev-a", "dev-b"}},
		{"SELECT TOP 0 * FROM devices", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			items, _ := all(t, db, "h1", tt.q, 0)
			if got := ids(t, items); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExecuteProjectionsAndAggregates(t *testing.T) {
	db := openFixture(t, t.TempDir())
	tests := []struct {
		q        string
		want     string
		itemType string
	}{
		{"SELECT deviceId, tags.site FROM devices WHERE tags.floor >= 2",
			`[{"deviceId":"dev-b","site":"north"},{"deviceId":"dev-d","site":"50%_off"}]`, ItemTypeRaw},
		{"SELECT deviceId AS id, tags.owner AS o, tags.list FROM devices WHERE deviceId IN ['dev-a', 'dev-d']",
			`[{"id":"dev-a","o":{"name":"ana"}},{"id":"dev-d","list":[1,2]}]`, ItemTypeRaw},
		{"SELECT COUNT() AS n FROM devices", `[{"n":5}]`, ItemTypeRaw},
		{"SELECT COUNT() FROM devices.modules", `[{"$1":2}]`, ItemTypeRaw},
		{"SELECT COUNT() AS n FROM devices WHERE tags.site = 'nowhere'", `[{"n":0}]`, ItemTypeRaw},
		{"SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site",
			`[{"site":"50%_off","n":1},{"site":"north","n":2},{"site":"south","n":1},{"n":1}]`, ItemTypeRaw},
		{"SELECT properties.reported.fw AS fw, COUNT() AS n, SUM(properties.reported.temp) AS t, MAX(tags.floor) AS hi FROM devices WHERE IS_DEFINED(properties.reported.fw) GROUP BY properties.reported.fw",
			`[{"fw":"1.0","n":2,"t":51.5,"hi":2},{"fw":"2.0","n":1,"t":19,"hi":3}]`, ItemTypeRaw},
		{"SELECT AVG(tags.floor) AS a, MIN(tags.floor) AS lo FROM devices", `[{"a":2,"lo":1}]`, ItemTypeRaw},
		{"SELECT status, connectionState, COUNT() AS n FROM devices GROUP BY status, connectionState",
			`[{"status":"disabled","connectionState":"Disconnected","n":1},{"status":"enabled","connectionState":"Connected","n":3},{"status":"enabled","connectionState":"Disconnected","n":1}]`, ItemTypeRaw},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			res, err := Execute(context.Background(), db, "h1", tt.q, Page{})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(res.Items)
			if string(got) != tt.want || res.ItemType != tt.itemType || res.Continuation != "" {
				t.Fatalf("got %s (%s, %q)\nwant %s (%s)", got, res.ItemType, res.Continuation, tt.want, tt.itemType)
			}
		})
	}
}

func TestExecuteSelectStarReturnsTheStoredTwin(t *testing.T) {
	db := openFixture(t, t.TempDir())
	res, err := Execute(context.Background(), db, "h1", "SELECT * FROM devices WHERE deviceId = 'dev-a'", Page{})
	if err != nil || len(res.Items) != 1 || res.ItemType != ItemTypeTwin {
		t.Fatalf("%v %v", res, err)
	}
	want, _ := json.Marshal(fixture[0].doc)
	if string(res.Items[0]) != string(want) {
		t.Fatalf("got %s\nwant %s", res.Items[0], want)
	}
}

func TestExecuteHubIsolation(t *testing.T) {
	db := openFixture(t, t.TempDir())
	items, _ := all(t, db, "h2", "SELECT * FROM devices", 0)
	if got := ids(t, items); !slices.Equal(got, []string{"dev-a"}) {
		t.Fatalf("h2: %v", got)
	}
	items, _ = all(t, db, "nohub", "SELECT * FROM devices", 0)
	if len(items) != 0 {
		t.Fatalf("unknown hub: %s", items)
	}
}

func TestExecutePaging(t *testing.T) {
	db := openFixture(t, t.TempDir())
	tests := []struct {
		q        string
		size     int
		want     []string
		wantPage int
	}{
		{"SELECT * FROM devices", 2, []string{"dev-a", "dev-b", "dev-c", "dev-d", "gw-1"}, 3},
		{"SELECT * FROM devices", 5, []string{"dev-a", "dev-b", "dev-c", "dev-d", "gw-1"}, 1},
		{"SELECT * FROM devices", 1, []string{"dev-a", "dev-b", "dev-c", "dev-d", "gw-1"}, 5},
		{"SELECT TOP 3 * FROM devices", 2, []string{"dev-a", "dev-b", "dev-c"}, 2},
		{"SELECT TOP 4 * FROM devices", 2, []string{"dev-a", "dev-b", "dev-c", "dev-d"}, 2},
		{"SELECT * FROM devices WHERE tags.site = 'north' OR status = 'disabled'", 2, []string{"dev-a", "dev-b", "dev-c"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			items, pages := all(t, db, "h1", tt.q, tt.size)
			if got := ids(t, items); !slices.Equal(got, tt.want) || pages != tt.wantPage {
				t.Fatalf("got %v in %d pages, want %v in %d", got, pages, tt.want, tt.wantPage)
			}
		})
	}
	// Grouped results page by offset.
	items, pages := all(t, db, "h1", "SELECT tags.site AS s, COUNT() AS n FROM devices GROUP BY tags.site", 3)
	if got, _ := json.Marshal(items); string(got) != `[{"s":"50%_off","n":1},{"s":"north","n":2},{"s":"south","n":1},{"n":1}]` || pages != 2 {
		t.Fatalf("grouped: %s in %d pages", got, pages)
	}
}

// A twin added between pages neither repeats nor shifts the others.
func TestExecutePagingIsStableUnderInserts(t *testing.T) {
	db := openFixture(t, t.TempDir())
	ctx := context.Background()
	res, err := Execute(ctx, db, "h1", "SELECT * FROM devices", Page{MaxItems: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO twin_docs (hub, device_id, module_id, doc) VALUES ('h1', 'aaa', '', '{"deviceId":"aaa"}')`); err != nil {
		t.Fatal(err)
	}
	rest, err := Execute(ctx, db, "h1", "SELECT * FROM devices", Page{MaxItems: 10, Continuation: res.Continuation})
	if err != nil {
		t.Fatal(err)
	}
	got := append(ids(t, res.Items), ids(t, rest.Items)...)
	if want := []string{"dev-a", "dev-b", "dev-c", "dev-d", "gw-1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestExecutePageSizeLimits(t *testing.T) {
	db := openFixture(t, t.TempDir())
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1100 {
		id := "bulk-" + strings.Repeat("0", 4-len(itoa(i))) + itoa(i)
		if _, err := tx.Exec(`INSERT INTO twin_docs (hub, device_id, module_id, doc) VALUES ('h3', ?, '', json_object('deviceId', ?))`, id, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct{ ask, want int }{{0, DefaultPageSize}, {-5, DefaultPageSize}, {5000, MaxPageSize}, {7, 7}} {
		res, err := Execute(ctx, db, "h3", "SELECT * FROM devices", Page{MaxItems: tt.ask})
		if err != nil || len(res.Items) != tt.want || res.Continuation == "" {
			t.Fatalf("page size %d: %d items, token %q, %v; want %d", tt.ask, len(res.Items), res.Continuation, err, tt.want)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestExecuteRefusesForeignContinuation(t *testing.T) {
	db := openFixture(t, t.TempDir())
	ctx := context.Background()
	res, err := Execute(ctx, db, "h1", "SELECT * FROM devices", Page{MaxItems: 1})
	if err != nil || res.Continuation == "" {
		t.Fatal(res, err)
	}
	tests := []struct{ hub, q, tok string }{
		{"h1", "SELECT * FROM devices WHERE status = 'enabled'", res.Continuation},
		{"h2", "SELECT * FROM devices", res.Continuation},
		{"h1", "SELECT * FROM devices", "not-a-token"},
		{"h1", "SELECT * FROM devices", "e30"}, // {} : no fingerprint
	}
	for _, tt := range tests {
		_, err := Execute(ctx, db, tt.hub, tt.q, Page{Continuation: tt.tok})
		if !errors.Is(err, ErrContinuation) {
			t.Errorf("%s %s %q: %v, want ErrContinuation", tt.hub, tt.q, tt.tok, err)
		}
	}
	// The same query, written differently, keeps its token.
	if _, err := Execute(ctx, db, "h1", "select *   from DEVICES", Page{Continuation: res.Continuation}); err != nil {
		t.Errorf("same query respelled: %v", err)
	}
}

// Values reach SQLite only as parameters: hostile strings are compared as
// plain text, the SQL text never contains them, and the table survives.
func TestExecuteBindsValues(t *testing.T) {
	db := openFixture(t, t.TempDir())
	hostile := []string{
		`x'; DROP TABLE twin_docs; --`,
		`' OR 1=1 --`,
		`north' OR '1'='1`,
		`") OR 1=1 --`,
		`%`, `_`,
	}
	for _, h := range hostile {
		lit := Literal{Kind: LitString, Str: h}
		var b strings.Builder
		lit.write(&b)
		for _, q := range []string{
			"SELECT * FROM devices WHERE tags.site = " + b.String(),
			"SELECT * FROM devices WHERE tags.site IN [" + b.String() + "]",
			"SELECT * FROM devices WHERE STARTSWITH(tags.site, " + b.String() + ")",
			"SELECT * FROM devices WHERE ENDSWITH(deviceId, " + b.String() + ")",
		} {
			parsed, err := Parse(q)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			var s sqlBuilder
			buildPlain(&s, "h1", parsed, cursor{}, 10)
			bound := slices.ContainsFunc(s.args, func(a any) bool {
				str, ok := a.(string)
				return ok && (str == h || strings.Contains(str, h)) // IN lists go as one JSON array
			})
			if len(h) > 2 && strings.Contains(s.b.String(), h) || !bound {
				t.Fatalf("%s: value not bound as a parameter:\n%s\n%v", q, s.b.String(), s.args)
			}
			items, _ := all(t, db, "h1", q, 0)
			if len(items) != 0 {
				t.Fatalf("%s matched %d twins", q, len(items))
			}
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM twin_docs`).Scan(&n); err != nil || n != len(fixture) {
		t.Fatalf("twin_docs after hostile queries: %d rows, %v", n, err)
	}
	// The hub name is a parameter too.
	items, _ := all(t, db, "h1' OR '1'='1", "SELECT * FROM devices", 0)
	if len(items) != 0 {
		t.Fatalf("hostile hub name matched %d twins", len(items))
	}
}

func TestExecuteParseErrorsMatchErrQuery(t *testing.T) {
	db := openFixture(t, t.TempDir())
	_, err := Execute(context.Background(), db, "h1", "SELECT * FROM devices.jobs", Page{})
	var qe *Error
	if !errors.Is(err, ErrQuery) || !errors.As(err, &qe) || !qe.Unsupported {
		t.Fatalf("%v", err)
	}
}

// The longest queries still compile to SQL SQLite accepts: long AND/OR
// chains are emitted balanced and IN lists travel as one parameter, so
// neither hits SQLite's expression depth (1000) or parameter limits.
func TestExecuteLongestQueries(t *testing.T) {
	db := openFixture(t, t.TempDir())
	fill := func(head, rep, tail string) string {
		var b strings.Builder
		b.WriteString(head)
		for b.Len()+len(rep)+len(tail) <= MaxQueryLength {
			b.WriteString(rep)
		}
		b.WriteString(tail)
		return b.String()
	}
	tests := []struct {
		name, q string
		want    []string
	}{
		{"or chain", fill("SELECT * FROM devices WHERE tags.floor=9", " OR a=1", " OR tags.floor=3"), []string{"dev-d"}},
		{"and chain", fill("SELECT * FROM devices WHERE tags.floor=3", " AND a!=1", ""), []string{}},
		{"in list", fill("SELECT * FROM devices WHERE tags.floor IN [0", ",9", ",3]"), []string{"dev-d"}},
		{"nin list", fill("SELECT * FROM devices WHERE tags.floor NIN [0", ",9", ",3]"), []string{"dev-a", "dev-b", "dev-c"}}, // dev-c: the string "2"
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.q) > MaxQueryLength || len(tt.q) < MaxQueryLength-20 {
				t.Fatalf("query of %d bytes", len(tt.q))
			}
			items, _ := all(t, db, "h1", tt.q, 0)
			if got := ids(t, items); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
