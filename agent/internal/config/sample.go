package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// The sample configs (configs/agent.yaml, configs/agent.full.yaml and
// firmware/openwrt/files/agent.yaml) ship these placeholder values; a
// test pins them against the files. The packages' postinst recognises the
// ID scope too.
const (
	SampleIDScope      = "0ne00012345"
	SampleSymmetricKey = "UkVQTEFDRS1NRS1XSVRILVRIRS1ERVZJQ0UtS0VZISE="
)

// SamplePath is where the packages install the commented sample config;
// a missing config file names it (and the copy in the source tree).
const SamplePath = "/usr/share/doc/porthole-agent/agent.full.yaml"

// missingHint is added to the error for a config file that does not exist.
const missingHint = "copy the sample " + SamplePath + " (configs/agent.yaml in the source) there and fill in the device's values"

// ErrMissing is wrapped by Load's error when the config file does not
// exist; the error text names the sample to copy.
var ErrMissing = errors.New("the config file does not exist")

// missingError is Load's error for a config file that does not exist.
func missingError(path string, err error) error {
	return fmt.Errorf("config: %s: %w (%w); %s", path, ErrMissing, errors.Unwrap(err), missingHint)
}

// SampleValues reports the sample's placeholder values still in c: an
// agent started with them fails at DPS (an unknown ID scope, a key that
// does not verify). It is not part of Validate (tests and examples use the
// placeholder scope); `porthole-agent validate` and doctor call it.
func (c *Config) SampleValues() []*FieldError {
	var errs []*FieldError
	add := func(field, problem, hint string) {
		errs = append(errs, &FieldError{File: c.File, Line: c.lineOf(field), Field: field, Problem: problem, Hint: hint})
	}
	if c.Provisioning.IDScope == SampleIDScope {
		add("provisioning.id_scope", fmt.Sprintf("%q is the sample's placeholder", SampleIDScope),
			"expected the ID scope from the DPS overview page")
	}
	if c.Provisioning.Attestation.SymmetricKey.Reveal() == SampleSymmetricKey {
		add("provisioning.attestation.symmetric_key", "is the sample's placeholder key",
			"expected the enrollment's key (or a per-device key derived from the group key)")
	}
	return errs
}

// FileModeProblem reports a config file other users can write to: they
// could point the agent at their own DPS and hub, or open streams to any
// address. nil when the mode is fine (and on Windows, where modes do not
// apply).
func FileModeProblem(path string) *FieldError {
	if windows() {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o022 == 0 {
		return nil
	}
	who := "other users"
	if st.Mode().Perm()&0o002 == 0 {
		who = "its group"
	}
	return &FieldError{File: path, Problem: fmt.Sprintf("%s can write to it (mode %04o)", who, st.Mode().Perm()),
		Hint: "expected chmod 600 (only the agent's user may change what the agent connects to)"}
}

// fileMissing reports whether err is a "does not exist" error.
func fileMissing(err error) bool { return errors.Is(err, fs.ErrNotExist) }
