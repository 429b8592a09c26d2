package main

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/porthole-iot/porthole/sdk/suggest"
)

// checkConfigKeys walks the config file's YAML against fileConfig and
// reports, all at once, every unknown key (with the closest known key as a
// "did you mean") and every value of the wrong kind, as file:line: field:
// problem — never a Go type name. (The agent's config does the same for
// its file; sdk must not import agent, so this is the operator side's
// own.)
func checkConfigKeys(path string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil // empty file
	}
	k := &keyChecker{path: path, all: leafPaths(reflect.TypeFor[fileConfig](), "")}
	k.walk(doc.Content[0], reflect.TypeFor[fileConfig](), "")
	return errors.Join(k.errs...)
}

type keyChecker struct {
	path string
	all  []string // every field path, for "belongs under"
	errs []error
}

func (k *keyChecker) fail(n *yaml.Node, field, format string, args ...any) {
	where := field
	if where == "" {
		where = "top level"
	}
	k.errs = append(k.errs, fmt.Errorf("%s:%d: %s: %s", k.path, n.Line, where, fmt.Sprintf(format, args...)))
}

func (k *keyChecker) walk(n *yaml.Node, t reflect.Type, field string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value: the default
	}
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			k.fail(n, field, "expected text, got %s", kindName(n))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			k.fail(n, field, "expected a list, like [\"a\", \"b\"], got %s", kindName(n))
			return
		}
		for i, c := range n.Content {
			k.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", field, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			k.fail(n, field, "expected a mapping of names, got %s", kindName(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Tag == "!!merge" {
				k.merge(n.Content[i+1], t, field)
				continue
			}
			k.walk(n.Content[i+1], t.Elem(), join(field, n.Content[i].Value))
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			k.fail(n, field, "expected a mapping of keys, got %s", kindName(n))
			return
		}
		known := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if n.Content[i].Tag == "!!merge" {
				k.merge(n.Content[i+1], t, field)
				continue
			}
			ft, ok := known[key]
			if !ok {
				k.unknown(n.Content[i], field, key, known)
				continue
			}
			if seen[key] {
				k.fail(n.Content[i], join(field, key), "given twice")
			}
			seen[key] = true
			k.walk(n.Content[i+1], ft, join(field, key))
		}
	}
}

// merge checks the mappings a merge key ("<<: *anchor", or a list of
// them) brings into a mapping of type t, as if written there.
func (k *keyChecker) merge(v *yaml.Node, t reflect.Type, field string) {
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			k.walk(m, t, field)
		}
		return
	}
	k.walk(v, t, field)
}

// unknown reports an unknown key with the closest known key of its level,
// or the section a key of that name belongs to.
func (k *keyChecker) unknown(n *yaml.Node, field, key string, known map[string]reflect.Type) {
	names := make([]string, 0, len(known))
	for name := range known {
		names = append(names, name)
	}
	slices.Sort(names)
	msg := fmt.Sprintf("unknown key %q", key)
	if s := suggest.Closest(key, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if where := belongs(key, k.all); where != "" {
		msg += fmt.Sprintf(" (%q belongs under %s)", key, where)
	} else {
		msg += " (known: " + strings.Join(names, ", ") + ")"
	}
	k.fail(n, join(field, key), "%s", msg)
}

// belongs returns the section of the first field path ending in key.
func belongs(key string, all []string) string {
	for _, p := range all {
		if i := strings.LastIndexByte(p, '.'); i > 0 && p[i+1:] == key {
			return p[:i]
		}
	}
	return ""
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// yamlFields maps a struct's yaml keys to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

// leafPaths lists every field path of t ("hubs.<name>.connection_string"
// as "hubs.*.connection_string").
func leafPaths(t reflect.Type, prefix string) []string {
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		names := make([]string, 0)
		fields := yamlFields(t)
		for n := range fields {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			out = append(out, join(prefix, n))
			out = append(out, leafPaths(fields[n], join(prefix, n))...)
		}
	case reflect.Map:
		out = append(out, leafPaths(t.Elem(), join(prefix, "<name>"))...)
	}
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// configLines maps every key path of the config file ("hubs.eu",
// "resolve[1]") to its line, for messages about values.
func configLines(data []byte) map[string]int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	lines := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := join(path, n.Content[i].Value)
				lines[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				lines[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(&doc, "")
	return lines
}
