package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/state"
	"github.com/porthole-iot/porthole/sdk/auth"
)

const (
	nameConfig  = "Config file"
	nameSecrets = "Key files"
	nameState   = "State directory"
	nameCreds   = "Credentials"
)

func unixModes() bool { return runtime.GOOS != "windows" }

// configFile: a config holding an inline secret must not be world-readable;
// a config anyone can change is a failure.
func (d *doctor) configFile() {
	if d.cfg.File == "" {
		d.skip(nameConfig, "the configuration was not read from a file")
		return
	}
	st, err := os.Stat(d.cfg.File)
	if err != nil {
		d.fail(nameConfig, fmt.Sprintf("cannot read %s: %v", d.cfg.File, plainErr(err)), "check the path given with -config")
		return
	}
	perm := st.Mode().Perm()
	if !unixModes() {
		d.ok(nameConfig, d.cfg.File)
		return
	}
	a := d.cfg.Provisioning.Attestation
	var inline []string
	if !a.SymmetricKey.IsZero() {
		inline = append(inline, "symmetric_key")
	}
	if !a.GroupKey.IsZero() {
		inline = append(inline, "group_key")
	}
	if u := d.cfg.Proxy.URL; u != nil {
		if _, ok := u.User.Password(); ok {
			inline = append(inline, "the proxy password")
		}
	}
	switch {
	case perm&0o002 != 0:
		d.fail(nameConfig, fmt.Sprintf("%s can be changed by every user on the device (mode %04o)", d.cfg.File, perm),
			"chmod 600 "+d.cfg.File)
	case perm&0o004 != 0 && len(inline) > 0:
		d.warn(nameConfig, fmt.Sprintf("%s holds %s and every user on the device can read it (mode %04o)", d.cfg.File, strings.Join(inline, " and "), perm),
			"chmod 600 "+d.cfg.File+" (or move the key to symmetric_key_file)")
	default:
		d.ok(nameConfig, fmt.Sprintf("%s, mode %04o", d.cfg.File, perm))
	}
}

// secretFiles: key files must be readable by the agent only.
func (d *doctor) secretFiles() {
	a := d.cfg.Provisioning.Attestation
	var paths []string
	for _, p := range []string{a.SymmetricKeyFile, a.GroupKeyFile, a.KeyFile} {
		if p != "" {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return
	}
	var loose, fine []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			d.fail(nameSecrets, fmt.Sprintf("cannot read %s: %v", p, plainErr(err)), "check the path in the config and that the file exists")
			return
		}
		if unixModes() && st.Mode().Perm()&0o077 != 0 {
			loose = append(loose, fmt.Sprintf("%s (mode %04o)", p, st.Mode().Perm()))
			continue
		}
		fine = append(fine, p)
	}
	if len(loose) > 0 {
		d.warn(nameSecrets, "other users on the device can read "+strings.Join(loose, ", "),
			"chmod 600 "+strings.Join(paths, " "))
		return
	}
	d.ok(nameSecrets, strings.Join(fine, ", ")+": readable by the owner only")
}

// stateDir: exists (or can be created), is writable, state.json is 0600
// and readable.
func (d *doctor) stateDir() {
	dir := d.cfg.StateDir
	if dir == "" {
		d.fail(nameState, "state_dir is empty", "set state_dir, e.g. "+config.DefaultStateDir)
		return
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.warn(nameState, dir+" does not exist yet; the agent creates it at first start if it may",
			"mkdir -p -m 700 "+dir)
		return
	case err != nil:
		d.fail(nameState, fmt.Sprintf("cannot use %s: %v", dir, plainErr(err)), "check state_dir in the config")
		return
	case !st.IsDir():
		d.fail(nameState, dir+" is not a directory", "point state_dir at a directory, e.g. "+config.DefaultStateDir)
		return
	case unixModes() && st.Mode().Perm()&0o077 != 0:
		// The control socket and the cached assignment live here. The
		// agent sets its own directory to 0700 at start (package state).
		d.warn(nameState, fmt.Sprintf("other users can reach into %s (mode %04o): the control socket and the cached assignment are there", dir, st.Mode().Perm()),
			"chmod 700 "+dir+" (the agent does it at start when the directory is its own)")
		return
	}
	f, err := os.CreateTemp(dir, ".porthole-doctor-*")
	if err != nil {
		d.fail(nameState, fmt.Sprintf("cannot write in %s: %v", dir, plainErr(err)),
			"give the agent's user write access to "+dir+" (on a read-only root file system use a writable path, e.g. /etc/porthole/state on OpenWrt)")
		return
	}
	_ = f.Close()
	_ = os.Remove(f.Name())

	path := filepath.Join(dir, state.FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.ok(nameState, dir+" is writable; no cached assignment yet (the device registers with DPS at first start)")
		return
	}
	if err != nil {
		d.fail(nameState, fmt.Sprintf("cannot read %s: %v", path, plainErr(err)), "give the agent's user read access to "+path)
		return
	}
	var s state.State
	if err := json.Unmarshal(data, &s); err != nil || s.AssignedHub == "" || s.DeviceID == "" {
		d.warn(nameState, path+" is damaged; the agent will set it aside and register with DPS again",
			"nothing to do, or delete "+path)
		return
	}
	var notes []string
	if unixModes() {
		if fst, err := os.Stat(path); err == nil && fst.Mode().Perm()&0o077 != 0 {
			d.warn(nameState, fmt.Sprintf("other users can read %s (mode %04o)", path, fst.Mode().Perm()), "chmod 600 "+path)
			return
		}
	}
	p := d.cfg.Provisioning
	if strings.EqualFold(s.IDScope, p.IDScope) && s.RegistrationID == p.RegistrationID &&
		(s.GlobalEndpoint == "" || strings.EqualFold(s.GlobalEndpoint, p.GlobalEndpoint)) {
		d.cachedHub = s.AssignedHub
		notes = append(notes, fmt.Sprintf("cached assignment: hub %s, device %s", s.AssignedHub, s.DeviceID))
		if !s.LastRegistered.IsZero() {
			notes[0] += ", registered " + s.LastRegistered.UTC().Format(time.RFC3339)
		}
	} else {
		notes = append(notes, "the cached assignment is for another device or ID scope; the agent will register again")
	}
	d.ok(nameState, dir+" is writable; "+strings.Join(notes, "; "))
}

// credentials: the key decodes and signs a DPS token, or the certificate is
// in date.
func (d *doctor) credentials() {
	p := d.cfg.Provisioning
	a := p.Attestation
	now := d.opts.Now()
	switch a.Type {
	case config.AttestSymmetricKey:
		key := a.DeviceKey.Reveal()
		if key == "" {
			fix := "set provisioning.attestation.symmetric_key or symmetric_key_file"
			if !a.GroupKey.IsZero() || a.GroupKeyFile != "" {
				fix = "set provisioning.registration_id; the device key is derived from the group key and it"
			}
			d.fail(nameCreds, "no device key is configured", fix)
			return
		}
		if err := auth.ValidateKey(key); err != nil {
			d.fail(nameCreds, "the device key is not valid base64", "copy the key again from the DPS enrollment")
			return
		}
		if _, err := auth.DPSToken(p.IDScope, p.RegistrationID, key, now.Add(time.Hour)); err != nil {
			d.fail(nameCreds, "cannot sign a DPS token: "+plainErr(err).Error(), "check id_scope and registration_id")
			return
		}
		if !a.GroupKey.IsZero() || a.GroupKeyFile != "" {
			// Whoever reads the group key off this device can compute the
			// key of every device in the group: Microsoft's guidance is to
			// derive each device's key at manufacturing
			// (MicrosoftDocs/azure-docs
			// articles/iot-dps/concepts-symmetric-key-attestation.md).
			d.warn(nameCreds, fmt.Sprintf("symmetric key for %s is derived on the device from the enrollment group key; "+
				"anyone who reads it here can compute the key of every device in the group", p.RegistrationID),
				fmt.Sprintf("derive this device's key off the device (porthole dps derive-key --group-key-file <file> --out-dir <dir> %s), "+
					"put it in symmetric_key_file and remove group_key/group_key_file from the device", p.RegistrationID))
			return
		}
		d.ok(nameCreds, fmt.Sprintf("symmetric key for %s: the device key decodes and signs a DPS token", p.RegistrationID))
	case config.AttestX509:
		if a.Certificate == nil || a.Certificate.Leaf == nil {
			d.fail(nameCreds, "no device certificate is loaded", "set provisioning.attestation.cert_file and key_file")
			return
		}
		leaf := a.Certificate.Leaf
		what := fmt.Sprintf("certificate CN=%s", leaf.Subject.CommonName)
		switch {
		case now.After(leaf.NotAfter):
			d.fail(nameCreds, fmt.Sprintf("the device %s expired on %s (device time %s)", what, day(leaf.NotAfter), day(now)),
				"install a new device certificate; if the device date is wrong, fix the clock first")
		case now.Before(leaf.NotBefore):
			d.fail(nameCreds, fmt.Sprintf("the device %s is not valid before %s (device time %s)", what, day(leaf.NotBefore), day(now)),
				"check the date on the device (enable NTP)")
		case leaf.NotAfter.Sub(now) < certExpiryWarning:
			d.warn(nameCreds, fmt.Sprintf("the device %s expires on %s", what, day(leaf.NotAfter)),
				"install a new device certificate before it expires")
		default:
			d.ok(nameCreds, fmt.Sprintf("%s, valid until %s", what, day(leaf.NotAfter)))
		}
	default:
		d.fail(nameCreds, fmt.Sprintf("attestation type %q is not supported", a.Type), "use symmetric_key or x509")
	}
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// plainErr drops the *PathError operation prefix noise but keeps the cause.
func plainErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s", pe.Err)
	}
	return err
}
