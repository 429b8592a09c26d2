package query

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The oracle evaluates WHERE conditions in Go, straight from the semantics
// the package doc states, over the fixture documents. FuzzSemantics checks
// that the SQL translation selects exactly the twins the oracle selects.

type tri int

const (
	undef tri = iota
	no
	yes
)

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

// lookup walks p through doc.
func lookup(doc map[string]any, p Path) (any, bool) {
	var cur any = doc
	for _, s := range p {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[s]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// family is the comparison family of a JSON value: "" for undefined,
// objects and arrays.
func family(v any, ok bool) string {
	if !ok {
		return ""
	}
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return ""
}

func operandValue(doc map[string]any, o Operand) (any, bool) {
	switch o := o.(type) {
	case Path:
		return lookup(doc, o)
	case Literal:
		switch o.Kind {
		case LitString:
			return o.Str, true
		case LitNumber:
			return o.Num, true
		case LitBool:
			return o.Bool, true
		default:
			return nil, true
		}
	}
	return nil, false
}

func cmp3(a, b any) int {
	switch a := a.(type) {
	case string:
		return strings.Compare(a, b.(string))
	case float64:
		switch b := b.(float64); {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	case bool:
		x, y := 0, 0
		if a {
			x = 1
		}
		if b.(bool) {
			y = 1
		}
		return x - y
	}
	return 0 // null
}

func oracleCompare(doc map[string]any, op string, l, r Operand) tri {
	lv, lok := operandValue(doc, l)
	rv, rok := operandValue(doc, r)
	lf, rf := family(lv, lok), family(rv, rok)
	if lf == "" || lf != rf {
		return undef
	}
	c := cmp3(lv, rv)
	switch op {
	case "=":
		return triOf(c == 0)
	case "!=", "<>":
		return triOf(c != 0)
	case "<":
		return triOf(c < 0)
	case ">":
		return triOf(c > 0)
	case "<=":
		return triOf(c <= 0)
	default:
		return triOf(c >= 0)
	}
}

func oracle(doc map[string]any, c Cond) tri {
	switch c := c.(type) {
	case Logic:
		l, r := oracle(doc, c.L), oracle(doc, c.R)
		if c.Op == OpAnd {
			switch {
			case l == no || r == no:
				return no
			case l == yes && r == yes:
				return yes
			}
			return undef
		}
		switch {
		case l == yes || r == yes:
			return yes
		case l == no && r == no:
			return no
		}
		return undef
	case Not:
		switch oracle(doc, c.X) {
		case yes:
			return no
		case no:
			return yes
		}
		return undef
	case Compare:
		return oracleCompare(doc, c.Op, c.L, c.R)
	case Member:
		v, ok := lookup(doc, c.X)
		if family(v, ok) == "" {
			return undef
		}
		in := false
		for _, l := range c.List {
			if oracleCompare(doc, "=", c.X, l) == yes {
				in = true
			}
		}
		return triOf(in != c.Not)
	case Func:
		v, ok := lookup(doc, c.Path)
		if c.Name == FuncIsDefined {
			return triOf(ok)
		}
		s, isStr := v.(string)
		if !ok || !isStr {
			return undef
		}
		if c.Name == FuncStartsWith {
			return triOf(strings.HasPrefix(s, c.Arg))
		}
		return triOf(strings.HasSuffix(s, c.Arg))
	case Truthy:
		v, ok := lookup(doc, c.X)
		if b, isBool := v.(bool); ok && isBool {
			return triOf(b)
		}
		return undef
	}
	panic("unknown condition")
}

// oracleIDs lists the fixture device twins of hub h1 the oracle selects.
func oracleIDs(t *testing.T, q *Query) []string {
	out := []string{}
	for _, r := range fixture {
		if r.hub != "h1" || (r.mod != "") != (q.From == Modules) {
			continue
		}
		// The fixture holds Go values; the database holds their JSON.
		b, _ := json.Marshal(r.doc)
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if q.Where == nil || oracle(doc, q.Where) == yes {
			id := r.dev
			if r.mod != "" {
				id += "/" + r.mod
			}
			out = append(out, id)
		}
	}
	return out
}

func FuzzSemantics(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM devices WHERE tags.site = 'north' OR tags.floor > 1.5",
		"SELECT * FROM devices WHERE NOT (tags.floor = '2') AND NOT properties.reported.ok",
		"SELECT * FROM devices WHERE NOT properties.reported.ok OR NOT tags.site",
		"SELECT * FROM devices WHERE tags.site NIN ['north', 2, null] OR tags.note IN [null, false]",
		"SELECT * FROM devices WHERE STARTSWITH(tags.site, '50') OR ENDSWITH(deviceId, '-1') OR IS_DEFINED(tags.list)",
		"SELECT * FROM devices WHERE properties.desired.fw <> properties.reported.fw OR properties.reported.temp <= 21.5",
		"SELECT * FROM devices WHERE tags.owner.name >= 'an' AND NOT (tags.owner = 1)",
		"SELECT * FROM devices WHERE properties.reported.ok != false OR 30 = properties.reported.temp",
		"SELECT * FROM devices.modules WHERE NOT (tags.role < 'b') OR moduleId = 'mod-x'",
		"SELECT * FROM devices WHERE tags.u = 'é€𝄞' OR STARTSWITH(tags.u, 'é€') OR ENDSWITH(tags.u, '𝄞')",
		"SELECT * FROM devices WHERE status = 'enabled' AND connectionState != 'Connected' OR tags.floor IN [3, 1]",
	} {
		f.Add(s)
	}
	db := openFixture(f, f.TempDir())
	f.Fuzz(func(t *testing.T, text string) {
		q, err := Parse(text)
		if err != nil || len(q.Fields) > 0 || q.Top >= 0 || len(q.GroupBy) > 0 {
			return
		}
		if !utf8.ValidString(q.String()) {
			return // SQLite counts characters of invalid UTF-8 differently
		}
		res, err := Run(context.Background(), db, "h1", q, Page{MaxItems: MaxPageSize})
		if err != nil {
			t.Fatalf("Run(%q): %v", q, err)
		}
		got, want := ids(t, res.Items), oracleIDs(t, q)
		if !slices.Equal(got, want) {
			t.Fatalf("%s\n SQL selects %v\n oracle     %v", q, got, want)
		}
	})
}
