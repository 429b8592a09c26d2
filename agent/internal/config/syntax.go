package config

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// maxLineSearch bounds the files whose syntax errors are located by
// re-parsing prefixes (one parse per line); longer files keep yaml.v3's
// line.
const maxLineSearch = 500

// syntaxLine returns the line of a YAML syntax error in data, or 0 when it
// cannot tell.
//
// yaml.v3 reports the line where the enclosing construct started, and
// for parser errors one too low (it prints a 0-based mark as 1-based): an
// unclosed "[" on line 3 is reported on line 2, a bad indentation on the
// line of the mapping above it. The mistake is on the first line that no
// longer belongs to a well-formed document: after the longest prefix of
// whole lines that still parses. (A multi-line value that is incomplete in
// a shorter prefix parses again once complete, so the longest well-formed
// prefix is the one to take, not the first broken one.)
func syntaxLine(data []byte) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxLineSearch {
		return 0
	}
	end := 0 // bytes in the prefix of the first k lines
	good := 0
	for k, l := range lines {
		end += len(l)
		if k+1 == len(lines) {
			break // the whole file is what failed
		}
		if parses(data[:end]) {
			good = k + 1
		}
	}
	if good >= len(lines) {
		return 0
	}
	return good + 1
}

// parses reports whether every YAML document in data is well formed.
func parses(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}
