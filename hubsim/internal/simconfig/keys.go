package simconfig

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/porthole-iot/porthole/hubsim/internal/pki/atomicfile"
)

// KeysFileName is the file in the state directory that keeps generated keys.
const KeysFileName = "keys.json"

// keyBytes is the size of generated keys (Azure generates 32-byte keys).
const keyBytes = 32

// keysFile is the JSON layout of keys.json.
type keysFile struct {
	DPS  map[string]keyPair            `json:"dps"`  // policy → keys
	Hubs map[string]map[string]keyPair `json:"hubs"` // lower-case host name → policy → keys
}

type keyPair struct {
	Primary   string `json:"primary"`
	Secondary string `json:"secondary"`
}

// EnsureKeys gives every policy without keys the keys kept in
// <state_dir>/keys.json, generating (from rnd; nil means crypto/rand) and
// persisting (0600) the ones not there yet. Keys set in the config win and
// are not written to the file. The state directory is created (0700).
func (c *Config) EnsureKeys(rnd io.Reader) error {
	if rnd == nil {
		rnd = rand.Reader
	}
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return fmt.Errorf("simconfig: %w", err)
	}
	path := filepath.Join(c.StateDir, KeysFileName)
	var kf keysFile
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("simconfig: %w", err)
	default:
		if err := json.Unmarshal(data, &kf); err != nil {
			return fmt.Errorf("simconfig: %s: %w", path, err)
		}
	}
	if kf.DPS == nil {
		kf.DPS = map[string]keyPair{}
	}
	if kf.Hubs == nil {
		kf.Hubs = map[string]map[string]keyPair{}
	}
	changed := false
	fillPolicies := func(ps []Policy, stored map[string]keyPair) error {
		for i := range ps {
			p := &ps[i]
			if p.PrimaryKey != "" && p.SecondaryKey != "" {
				continue
			}
			kp, ok := stored[p.Name]
			if !ok || kp.Primary == "" || kp.Secondary == "" {
				var err error
				if kp.Primary, err = newKey(rnd); err != nil {
					return err
				}
				if kp.Secondary, err = newKey(rnd); err != nil {
					return err
				}
				stored[p.Name] = kp
				changed = true
			}
			if p.PrimaryKey == "" {
				p.PrimaryKey = kp.Primary
			}
			if p.SecondaryKey == "" {
				p.SecondaryKey = kp.Secondary
			}
		}
		return nil
	}
	if err := fillPolicies(c.DPS.Policies, kf.DPS); err != nil {
		return err
	}
	for i := range c.Hubs {
		host := strings.ToLower(c.Hubs[i].HostName)
		if kf.Hubs[host] == nil {
			kf.Hubs[host] = map[string]keyPair{}
		}
		if err := fillPolicies(c.Hubs[i].Policies, kf.Hubs[host]); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	out, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("simconfig: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("simconfig: %w", err)
	}
	return nil
}

func newKey(rnd io.Reader) (string, error) {
	b := make([]byte, keyBytes)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", fmt.Errorf("simconfig: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
