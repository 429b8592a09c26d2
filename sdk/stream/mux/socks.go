package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// SOCKS5 (RFC 1928), the part `ssh -D` serves: no authentication, the
// CONNECT command, IPv4, IPv6 and domain-name destinations. Only the
// handshake is here; the operator's front end sends the destination to
// the device as a KindDial request, and the device decides.

// ErrSOCKS is wrapped by every SOCKS handshake error.
var ErrSOCKS = errors.New("socks")

const (
	socksVersion    = 5
	socksNoAuth     = 0x00
	socksNoMethods  = 0xff
	socksCmdConnect = 1
	socksAtypIPv4   = 1
	socksAtypDomain = 3
	socksAtypIPv6   = 4
)

// ReadSOCKSRequest runs the server side of the SOCKS5 greeting on rw
// (choosing "no authentication") and reads the request. It returns the
// destination as host:port. A request the front end cannot serve has
// already been answered with the matching reply when the error returns.
func ReadSOCKSRequest(rw io.ReadWriter) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(rw, h[:]); err != nil {
		return "", fmt.Errorf("%w: greeting: %w", ErrSOCKS, err)
	}
	if h[0] != socksVersion {
		return "", fmt.Errorf("%w: version %d (only SOCKS5)", ErrSOCKS, h[0])
	}
	methods := make([]byte, h[1])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return "", fmt.Errorf("%w: greeting: %w", ErrSOCKS, err)
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == socksNoAuth
	}
	if !ok {
		_, _ = rw.Write([]byte{socksVersion, socksNoMethods})
		return "", fmt.Errorf("%w: client offers no method without authentication", ErrSOCKS)
	}
	if _, err := rw.Write([]byte{socksVersion, socksNoAuth}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrSOCKS, err)
	}
	var r [4]byte
	if _, err := io.ReadFull(rw, r[:]); err != nil {
		return "", fmt.Errorf("%w: request: %w", ErrSOCKS, err)
	}
	if r[0] != socksVersion {
		return "", fmt.Errorf("%w: request version %d", ErrSOCKS, r[0])
	}
	var host string
	switch r[3] {
	case socksAtypIPv4:
		var a [4]byte
		if _, err := io.ReadFull(rw, a[:]); err != nil {
			return "", fmt.Errorf("%w: request: %w", ErrSOCKS, err)
		}
		host = netip.AddrFrom4(a).String()
	case socksAtypIPv6:
		var a [16]byte
		if _, err := io.ReadFull(rw, a[:]); err != nil {
			return "", fmt.Errorf("%w: request: %w", ErrSOCKS, err)
		}
		host = netip.AddrFrom16(a).String()
	case socksAtypDomain:
		var n [1]byte
		if _, err := io.ReadFull(rw, n[:]); err != nil {
			return "", fmt.Errorf("%w: request: %w", ErrSOCKS, err)
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(rw, name); err != nil {
			return "", fmt.Errorf("%w: request: %w", ErrSOCKS, err)
		}
		if len(name) == 0 {
			_ = WriteSOCKSReply(rw, CodeAddressUnsupported)
			return "", fmt.Errorf("%w: empty domain name", ErrSOCKS)
		}
		host = string(name)
	default:
		_ = WriteSOCKSReply(rw, CodeAddressUnsupported)
		return "", fmt.Errorf("%w: address type %d", ErrSOCKS, r[3])
	}
	var p [2]byte
	if _, err := io.ReadFull(rw, p[:]); err != nil {
		return "", fmt.Errorf("%w: request: %w", ErrSOCKS, err)
	}
	if r[1] != socksCmdConnect {
		_ = WriteSOCKSReply(rw, CodeCommandUnsupported)
		return "", fmt.Errorf("%w: command %d (only CONNECT)", ErrSOCKS, r[1])
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(p[:])))), nil
}

// WriteSOCKSReply sends a SOCKS5 reply with code and an all-zero IPv4
// bound address (the bound address is the device's, which the operator's
// client has no use for).
func WriteSOCKSReply(w io.Writer, code Code) error {
	_, err := w.Write([]byte{socksVersion, byte(code), 0, socksAtypIPv4, 0, 0, 0, 0, 0, 0})
	return err
}
