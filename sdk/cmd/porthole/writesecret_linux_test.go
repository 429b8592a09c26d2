package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteSecretKeepsOldOnFailure: a key file is replaced whole or not
// at all. A file size limit below the new content's length makes the
// write fail part way (EFBIG), as a full disk would; the old key must
// survive (it used to be truncated first and lost), and no temporary file
// may be left behind.
func TestWriteSecretKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dev1.key")
	const old = "b2xkIGtleSBvZiB0aGlydHktdHdvIGJ5dGVzIQ==\n"
	if err := os.WriteFile(p, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 8
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &low); err != nil {
		t.Fatal(err)
	}
	err := writeSecret(p, "bmV3IGtleSBvZiB0aGlydHktdHdvIGJ5dGVzIQ==\n")
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatal("the write went through despite the size limit")
	}
	if b, rerr := os.ReadFile(p); rerr != nil || string(b) != old {
		t.Errorf("after a failed write the key file holds %q (%v), want the old key", b, rerr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files left: %v", ents)
	}

	// Without the limit the new key replaces the old one, mode 0600.
	if err := writeSecret(p, "new\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new\n" {
		t.Errorf("key file %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o", st.Mode().Perm())
	}
}
