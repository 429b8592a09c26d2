package simconfig

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// checkNode walks a parsed YAML document against the Go type it is decoded
// into and returns one error per problem, each as "file:line: field: what
// is wrong; what is expected": unknown keys (with the closest known key of
// the same mapping) and values of the wrong kind. The messages never name
// a Go type. What it lets through, the decoder itself still checks.
func checkNode(name string, n *yaml.Node, t reflect.Type, path string) []error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		var errs []error
		for _, c := range n.Content {
			errs = append(errs, checkNode(name, c, t, path)...)
		}
		return errs
	}
	if n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty file or value leaves the defaults
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	bad := func() []error {
		return []error{fmt.Errorf("%s:%d: %s: %s is not valid here; expected %s", name, n.Line, orTop(path), nodeKind(n), typeWant(t))}
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		if n.Kind != yaml.ScalarNode {
			return bad()
		}
		if _, err := time.ParseDuration(n.Value); err != nil && n.Value != "0" {
			return bad()
		}
		return nil
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return bad()
		}
		fields := map[string]reflect.StructField{}
		var known []string
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f
			known = append(known, tag)
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" { // "<<: *defaults": the merged keys belong here
				merged := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					merged = v.Content
				}
				for _, m := range merged {
					errs = append(errs, checkNode(name, m, t, path)...)
				}
				continue
			}
			p := joinPath(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("%s:%d: %s: unknown key", name, k.Line, p)
				if s := closest(k.Value, known); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				errs = append(errs, errors.New(msg))
				continue
			}
			errs = append(errs, checkNode(name, v, f.Type, p)...)
		}
		return errs
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return bad()
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, checkNode(name, n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value))...)
		}
		return errs
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad()
		}
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, checkNode(name, c, t.Elem(), path+"["+strconv.Itoa(i)+"]")...)
		}
		return errs
	}
	// A scalar: the decoder decides what it accepts.
	if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
		return bad()
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// nodeKind says what a node is, for "… is not valid here".
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// typeWant says what a Go type takes, in the config's words.
func typeWant(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration like 30s (units: ms, s, m, h)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "another kind of value"
}

// closest returns the known key nearest to key when it is near enough to
// be a typo (edit distance at most a third of the key's length, at least
// 1), else "".
func closest(key string, known []string) string {
	best, bestD := "", max(1, len(key)/3)+1
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
