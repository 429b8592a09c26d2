package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// maxFileSize bounds every file the config reads (the config itself, keys,
// certificates): anything larger is a mistake, not a config.
const maxFileSize = 1 << 20

// Load reads, decodes, validates the config at path and loads the secrets
// it points at. On error the config is nil and the error joins every
// *FieldError found (see FieldErrors); warnings are returned either way.
func Load(path string) (*Config, []Warning, error) {
	data, mode, err := readLimited(path)
	if fileMissing(err) {
		return nil, nil, missingError(path, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	c, warns, err := Parse(path, data)
	if c != nil && !windows() && mode.Perm()&0o004 != 0 {
		// An inline secret in a world-readable file can be read by any
		// local user.
		inline := []struct {
			field string
			set   bool
		}{
			{"provisioning.attestation.symmetric_key", !c.Provisioning.Attestation.SymmetricKey.IsZero()},
			{"provisioning.attestation.group_key", !c.Provisioning.Attestation.GroupKey.IsZero()},
			{"proxy.url", c.Proxy.URL != nil && hasPassword(c)},
		}
		for _, s := range inline {
			if s.set {
				warns = append(warns, Warning{File: path, Line: c.lineOf(s.field), Field: s.field,
					Message: fmt.Sprintf("a secret sits in a file every user can read (mode %04o); chmod 600 the config or move the secret to a *_file", mode.Perm())})
			}
		}
	}
	return c, warns, err
}

func hasPassword(c *Config) bool {
	_, ok := c.Proxy.URL.User.Password()
	return ok
}

// Parse decodes data (named name in messages; relative paths resolve
// against name's directory), validates it and loads the secrets it points
// at. Like Load, it returns a nil config on error.
func Parse(name string, data []byte) (*Config, []Warning, error) {
	c := Default()
	c.File = name
	if name != "" {
		c.dir = filepath.Dir(name)
	}
	errs, fatal := decode(name, data, c)
	if fatal {
		return nil, nil, joinSorted(errs)
	}
	c.absPaths()
	errs = append(errs, c.validate()...)
	warns, lerrs := c.loadSecrets()
	errs = append(errs, lerrs...)
	if err := joinSorted(errs); err != nil {
		return nil, warns, err
	}
	return c, warns, nil
}

// LoadSecrets reads the key, certificate and CA files the config names,
// fills Attestation.DeviceKey / Attestation.Certificate / RootCAs, and
// warns about key files other users can read. Load and Parse call it; call
// it yourself after building a Config in code.
func (c *Config) LoadSecrets() ([]Warning, error) {
	w, errs := c.loadSecrets()
	return w, joinSorted(errs)
}

func (c *Config) absPaths() {
	for _, p := range []*string{
		&c.Provisioning.Attestation.SymmetricKeyFile, &c.Provisioning.Attestation.GroupKeyFile,
		&c.Provisioning.Attestation.CertFile, &c.Provisioning.Attestation.KeyFile,
		&c.CAFile, &c.StateDir, &c.Log.File, &c.Metrics.Textfile,
	} {
		if *p != "" && !filepath.IsAbs(*p) && c.dir != "" {
			*p = filepath.Join(c.dir, *p)
		}
	}
}

type loader struct {
	c     *Config
	errs  []*FieldError
	warns []Warning
}

func (l *loader) add(field, problem, hint string) {
	l.errs = append(l.errs, &FieldError{File: l.c.File, Line: l.c.lineOf(field), Field: field, Problem: problem, Hint: hint})
}

func (c *Config) loadSecrets() ([]Warning, []*FieldError) {
	l := &loader{c: c}
	a := &c.Provisioning.Attestation
	const pre = "provisioning.attestation."
	a.DeviceKey, a.Certificate = Secret{}, nil
	switch a.Type {
	case AttestSymmetricKey:
		var fileKey, fileGroup Secret
		if a.SymmetricKeyFile != "" {
			fileKey = l.keyFile(pre+"symmetric_key_file", a.SymmetricKeyFile, "the device key")
		}
		if a.GroupKeyFile != "" {
			fileGroup = l.keyFile(pre+"group_key_file", a.GroupKeyFile, "the enrollment group key")
		}
		switch {
		case !a.SymmetricKey.IsZero():
			a.DeviceKey = a.SymmetricKey
		case !fileKey.IsZero():
			a.DeviceKey = fileKey
		default:
			group := a.GroupKey
			if group.IsZero() {
				group = fileGroup
			}
			if !group.IsZero() && c.Provisioning.RegistrationID != "" {
				if k, err := DeriveDeviceKey(group, c.Provisioning.RegistrationID); err == nil {
					a.DeviceKey = k
				}
			}
		}
	case AttestX509:
		if a.CertFile != "" && a.KeyFile != "" {
			l.certificate()
		}
	}
	if c.CAFile != "" {
		l.caFile()
	}
	return l.warns, l.errs
}

// keyFile reads a base64 key from path; the zero Secret on failure.
func (l *loader) keyFile(field, path, what string) Secret {
	data, mode, err := readLimited(path)
	if err != nil {
		l.add(field, "cannot read it: "+errText(err), "expected a readable file holding "+what)
		return Secret{}
	}
	l.checkMode(field, path, mode)
	s := strings.TrimSpace(string(data))
	if s == "" {
		l.add(field, fmt.Sprintf("%s is empty", path), "expected a file holding "+what+" (base64)")
		return Secret{}
	}
	if b, err := base64.StdEncoding.DecodeString(s); err != nil || len(b) == 0 {
		l.add(field, fmt.Sprintf("%s does not hold valid base64", path), "expected a file holding "+what+" exactly as shown in the Azure portal")
		return Secret{}
	}
	return NewSecret(s)
}

func (l *loader) checkMode(field, path string, mode fs.FileMode) {
	if windows() || mode.Perm()&0o077 == 0 {
		return
	}
	l.warns = append(l.warns, Warning{File: l.c.File, Line: l.c.lineOf(field), Field: field,
		Message: fmt.Sprintf("%s can be read by other users (mode %04o); chmod 600 it", path, mode.Perm())})
}

func (l *loader) certificate() {
	a := &l.c.Provisioning.Attestation
	const pre = "provisioning.attestation."
	certPEM, _, err := readLimited(a.CertFile)
	if err != nil {
		l.add(pre+"cert_file", "cannot read it: "+errText(err), "expected the device certificate (PEM)")
		return
	}
	keyPEM, mode, err := readLimited(a.KeyFile)
	if err != nil {
		l.add(pre+"key_file", "cannot read it: "+errText(err), "expected the device private key (PEM)")
		return
	}
	l.checkMode(pre+"key_file", a.KeyFile, mode)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls errors describe the problem without quoting key material.
		l.add(pre+"cert_file", "cannot use the certificate and key: "+err.Error(), "expected a PEM certificate and its matching PEM private key")
		return
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			l.add(pre+"cert_file", "cannot parse the certificate: "+err.Error(), "expected a PEM certificate")
			return
		}
	}
	cn := cert.Leaf.Subject.CommonName
	p := &l.c.Provisioning
	switch {
	case cn == "":
		l.add(pre+"cert_file", "the certificate has no subject common name", "expected CN = the registration ID (DPS uses it as the registration ID)")
		return
	case p.RegistrationID == "":
		// DPS takes the registration ID from the certificate's CN.
		// Source: MicrosoftDocs/azure-docs articles/iot-dps/concepts-service.md ("Registration ID").
		p.RegistrationID = cn
	case p.RegistrationID != cn:
		l.add("provisioning.registration_id", fmt.Sprintf("%q differs from the certificate's common name %q", clip(p.RegistrationID), clip(cn)),
			"expected them equal (DPS uses the CN as the registration ID), or registration_id left out")
		return
	}
	a.Certificate = &cert
}

func (l *loader) caFile() {
	data, _, err := readLimited(l.c.CAFile)
	if err != nil {
		l.add("ca_file", "cannot read it: "+errText(err), "expected a readable PEM file of CA certificates")
		return
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		l.add("ca_file", fmt.Sprintf("%s holds no PEM certificates", l.c.CAFile), "expected one or more -----BEGIN CERTIFICATE----- blocks")
		return
	}
	l.c.RootCAs = pool
}

// readLimited reads a regular file of at most maxFileSize bytes.
func readLimited(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, 0, err
	}
	if len(data) > maxFileSize {
		return nil, 0, fmt.Errorf("%s is larger than %s", path, FormatSize(maxFileSize))
	}
	return data, st.Mode(), nil
}

// errText keeps the *PathError text ("open /x: permission denied").
func errText(err error) string { return err.Error() }

func windows() bool { return runtime.GOOS == "windows" }
