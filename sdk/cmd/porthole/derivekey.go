package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/porthole-iot/porthole/sdk/auth"
)

// derive-key turns an enrollment group key into per-device keys at
// manufacturing time, so that devices carry only their own key
// (symmetric_key_file) and never the group key: anyone who reads the group
// key off one device can compute the key of every device in the group.
// Microsoft's guidance: "Symmetric key attestation", section "Group
// enrollments" (MicrosoftDocs/azure-docs
// articles/iot-dps/concepts-symmetric-key-attestation.md), and the
// derived-key samples of the Azure IoT SDKs (Azure/azure-iot-sdk-csharp
// provisioning/device/samples ComputeDerivedSymmetricKeySample), which keep
// the derivation away from device code on purpose.

const deriveKeyUsage = "usage: porthole dps derive-key --group-key-file <file|-> (--out-dir <dir> | --stdout) <registrationId>..."

// maxGroupKeyFile bounds what is read as a group key (a base64 key of at
// most 64 bytes is 88 characters).
const maxGroupKeyFile = 4096

// cmdDPSDeriveKey: porthole dps derive-key. The group key comes from a
// file or stdin, never from the command line (other users see argv in ps).
// Keys go to <dir>/<registrationId>.key (mode 0600), or to stdout as
// "<registrationId> <key>" lines only when --stdout asks for it.
func cmdDPSDeriveKey(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "--group-key" || a == "-group-key" || strings.HasPrefix(a, "--group-key=") || strings.HasPrefix(a, "-group-key=") {
			return usagef("the group key is read from a file (--group-key-file FILE, or - for stdin), never from the command line, where other users can see it")
		}
	}
	fs := newFlagSet("dps derive-key", stderr)
	keyFile := fs.String("group-key-file", "", "file holding the enrollment group's primary or secondary key (base64); - reads stdin")
	outDir := fs.String("out-dir", "", "write each device key to <dir>/<registrationId>.key with mode 0600")
	toStdout := fs.Bool("stdout", false, `print "<registrationId> <key>" lines instead of writing files`)
	ids, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(extra) != 0 || len(ids) == 0 || *keyFile == "":
		return usagef(deriveKeyUsage)
	case (*outDir == "") == !*toStdout:
		return usagef("give exactly one of --out-dir and --stdout\n%s", deriveKeyUsage)
	}
	for _, id := range ids {
		if err := validRegistrationID(id); err != nil {
			return usagef("%v", err)
		}
	}
	groupKey, err := readGroupKey(*keyFile, stdin, stderr)
	if err != nil {
		return err
	}
	for _, id := range ids {
		key, err := auth.DeriveGroupKey(groupKey, id)
		if err != nil {
			return fmt.Errorf("derive the key of %q: %w", id, err)
		}
		if *toStdout {
			if _, err := fmt.Fprintf(stdout, "%s %s\n", id, key); err != nil {
				return err
			}
			continue
		}
		path := filepath.Join(*outDir, id+".key")
		if err := writeSecret(path, key+"\n"); err != nil {
			return fmt.Errorf("write the key of %q: %w", id, err)
		}
		fmt.Fprintf(stdout, "%s: key written to %s\n", id, path)
	}
	return nil
}

// readGroupKey reads and checks the group key from path ("-": stdin). A
// key file other users can read gets a warning.
func readGroupKey(path string, stdin io.Reader, stderr io.Writer) (string, error) {
	var r io.Reader = stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("group key: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(stderr, "warning: %s can be read by other users (mode %04o); chmod 600 %s\n", path, st.Mode().Perm(), path)
		}
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, maxGroupKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("group key: read %s: %w", name, err)
	}
	if len(b) > maxGroupKeyFile {
		return "", fmt.Errorf("group key: %s is longer than %d bytes; expected one base64 key", name, maxGroupKeyFile)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("group key: %s is empty", name)
	}
	if err := auth.ValidateKey(key); err != nil {
		return "", fmt.Errorf("group key in %s: %w (expected the enrollment group's key exactly as DPS shows it)", name, err)
	}
	return key, nil
}

// validRegistrationID checks a DPS registration id: 1 to 128 ASCII
// letters, digits and ": . _ -" (Azure/azure-rest-api-specs
// specification/deviceprovisioningservices/data-plane/
// DeviceProvisioningServices/device/models.tsp, registrationId). "." and
// ".." are refused too: they would name directories in --out-dir.
func validRegistrationID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("registration id %q: expected 1 to 128 characters", id)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("registration id %q: not usable as a file name", id)
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("registration id %q: %q is not allowed (letters, digits, : . _ -)", id, c)
		}
	}
	return nil
}
