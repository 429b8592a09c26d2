package config

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// StateDirOf returns the state directory a config file names, read as
// leniently as possible: it is how `porthole-agent status` finds the
// running agent's control socket when the file on disk no longer loads (a
// broken edit is exactly when status is needed). It uses the state_dir
// key when the file parses as YAML, else a top-level "state_dir:" line,
// else DefaultStateDir; a relative path is taken from the file's
// directory, as Load does.
func StateDirOf(path string) string {
	data, _, err := readLimited(path)
	if err != nil {
		return DefaultStateDir
	}
	dir := ""
	var doc struct {
		StateDir string `yaml:"state_dir"`
	}
	if err := yaml.Unmarshal(data, &doc); err == nil {
		dir = doc.StateDir
	} else {
		dir = stateDirLine(data)
	}
	switch {
	case dir == "":
		return DefaultStateDir
	case !filepath.IsAbs(dir):
		return filepath.Join(filepath.Dir(path), dir)
	}
	return dir
}

// stateDirLine finds a top-level "state_dir: value" line.
func stateDirLine(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	found := ""
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "state_dir:")
		if !ok {
			continue
		}
		if i := strings.Index(v, " #"); i >= 0 {
			v = v[:i]
		}
		found = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return found
}
