package config

import (
	"strings"
	"testing"
)

// TestSyntaxErrorLine: a YAML syntax error is reported on the line of the
// mistake (yaml.v3 alone says the line before it, or the line where the
// enclosing mapping started).
func TestSyntaxErrorLine(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
	}{
		{"unclosed flow sequence", "provisioning:\n  id_scope: x\n  bad: [1, 2\nstreams:\n  x: y\n", 3},
		{"tab indentation", "a: 1\nb: 2\n\tc: 3\n", 3},
		{"unterminated quote", "a: 1\nb: \"unterminated\nc: 3\n", 2},
		{"dedented key", "a:\n  b: 1\n c: 2\n", 3},
		{"list item in a mapping", "a: 1\nb: 2\n- c\n", 3},
		{"unclosed flow mapping", "a: 1\nb: {x: 1\nc: 3\n", 2},
		{"reserved character", "a: 1\nb: @x\n", 2},
		{"over-indented key", "a: 1\n  b: 2\n", 2},
		{"unknown anchor", "a: &x 1\nb: *y\n", 2},
		{"multi-line value then mistake", "a: \"x\n  y\"\nb: [\n", 3},
		{"second document", "a: 1\n---\nb: [\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse("f.yaml", []byte(tt.yaml))
			var syntax *FieldError
			for _, fe := range FieldErrors(err) {
				if strings.HasPrefix(fe.Problem, "syntax error") {
					syntax = fe
				}
			}
			if syntax == nil {
				t.Fatalf("no syntax error for %q: %v", tt.yaml, err)
			}
			if syntax.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", syntax.Line, tt.line, syntax)
			}
		})
	}
}

// TestSyntaxErrorLineLongFile: past maxLineSearch lines the search is not
// made (it parses once per line) and yaml.v3's own line is kept.
func TestSyntaxErrorLineLongFile(t *testing.T) {
	var b strings.Builder
	for i := 0; i < maxLineSearch+10; i++ {
		b.WriteString("# filler\n")
	}
	b.WriteString("a: [1\n")
	_, _, err := Parse("f.yaml", []byte(b.String()))
	fes := FieldErrors(err)
	if len(fes) != 1 || fes[0].Line < maxLineSearch {
		t.Errorf("%v", err)
	}
}
