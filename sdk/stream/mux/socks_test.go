package mux

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// rw is a scripted SOCKS client: reads come from in, writes go to out.
type rw struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (r *rw) Read(p []byte) (int, error)  { return r.in.Read(p) }
func (r *rw) Write(p []byte) (int, error) { return r.out.Write(p) }

func TestReadSOCKSRequest(t *testing.T) {
	greet := []byte{5, 1, 0}
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantOut []byte
		err     bool
	}{
		{"domain", append(append([]byte{}, greet...), 5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80),
			"localhost:80", []byte{5, 0}, false},
		{"ipv4", append(append([]byte{}, greet...), 5, 1, 0, 1, 10, 0, 0, 1, 0x1f, 0x90),
			"10.0.0.1:8080", []byte{5, 0}, false},
		{"ipv6", append(append([]byte{}, greet...), 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22),
			"[::1]:22", []byte{5, 0}, false},
		{"bind command", append(append([]byte{}, greet...), 5, 2, 0, 1, 10, 0, 0, 1, 0, 80),
			"", []byte{5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0}, true},
		{"auth only", []byte{5, 1, 2}, "", []byte{5, 0xff}, true},
		{"socks4", []byte{4, 1, 0, 80}, "", nil, true},
		{"bad atyp", append(append([]byte{}, greet...), 5, 1, 0, 9), "", []byte{5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &rw{in: bytes.NewReader(tc.in)}
			got, err := ReadSOCKSRequest(c)
			if tc.err != (err != nil) || got != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
			if err != nil && !errors.Is(err, ErrSOCKS) {
				t.Fatalf("error %v does not wrap ErrSOCKS", err)
			}
			if !bytes.Equal(c.out.Bytes(), tc.wantOut) {
				t.Fatalf("wrote % x, want % x", c.out.Bytes(), tc.wantOut)
			}
		})
	}
}

func FuzzReadSOCKSRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 1, 'a', 0, 80})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 80})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &rw{in: bytes.NewReader(in)}
		_, _ = ReadSOCKSRequest(c)
		_, _ = io.Copy(io.Discard, c.in)
	})
}
