package mux

import (
	"bytes"
	"errors"
	"testing"
)

func TestRequestBytes(t *testing.T) {
	// Pins the wire layout.
	b, err := Request{Kind: KindTarget, Name: "web"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 1, 0, 3, 'w', 'e', 'b'}; !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
	r, err := Reply{Code: CodeNotAllowed, ID: 0x01020304, Message: "no"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 2, 1, 2, 3, 4, 0, 2, 'n', 'o'}; !bytes.Equal(r, want) {
		t.Fatalf("got % x, want % x", r, want)
	}
	if StreamName != "porthole-mux-v1" {
		t.Fatalf("StreamName changed: %q", StreamName)
	}
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Request
		err  error
	}{
		{"target", []byte{1, 1, 0, 3, 's', 's', 'h'}, Request{Kind: KindTarget, Name: "ssh"}, nil},
		{"dial", []byte{1, 2, 0, 4, 'a', ':', '8', '0'}, Request{Kind: KindDial, Name: "a:80"}, nil},
		{"control", []byte{1, 3, 0, 0}, Request{Kind: KindControl}, nil},
		{"bad version", []byte{2, 1, 0, 0}, Request{}, ErrBadHeader},
		{"bad kind", []byte{1, 9, 0, 0}, Request{}, ErrBadHeader},
		{"too long", []byte{1, 1, 0xff, 0xff}, Request{}, ErrBadHeader},
		{"short", []byte{1, 1, 0, 5, 'a'}, Request{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadRequest(bytes.NewReader(tc.in))
			if tc.name == "short" {
				if err == nil {
					t.Fatal("short input accepted")
				}
				return
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{1, 1, 0, 3, 's', 's', 'h'})
	f.Add([]byte{1, 3, 0, 0})
	f.Add([]byte{1, 2, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ReadRequest(bytes.NewReader(in))
		if err != nil {
			return
		}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed %+v does not marshal: %v", r, err)
		}
		if !bytes.Equal(b, in[:len(b)]) {
			t.Fatalf("round trip % x != % x", b, in[:len(b)])
		}
	})
}

func FuzzReadReply(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{1, 2, 0, 0, 0, 1, 0, 2, 'n', 'o'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ReadReply(bytes.NewReader(in))
		if err != nil {
			return
		}
		b, _ := r.MarshalBinary()
		if !bytes.Equal(b, in[:len(b)]) {
			t.Fatalf("round trip % x != % x", b, in[:len(b)])
		}
	})
}
