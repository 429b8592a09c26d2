package query

import "testing"

// TestWirePins pins the values this package puts on the wire (cited where
// they are defined, in exec.go).
func TestWirePins(t *testing.T) {
	pins := []struct {
		got, want any
	}{
		{ItemTypeTwin, "twin"},
		{ItemTypeRaw, "raw"},
		{DefaultPageSize, 100},
		{MaxPageSize, 1000},
		{Table, "twin_docs"},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%v, want %v", p.got, p.want)
		}
	}
}
