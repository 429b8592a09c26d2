package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/service"
)

// hint returns " (what to do next)" for errors with a known next step, or
// "".
func (s *settings) hint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &unknownCA) || (errors.As(err, &verify) && !errors.As(err, &hostErr)):
		if s.caFile != "" {
			return fmt.Sprintf(" (the server's certificate does not chain to the system roots or to --ca %s: is it the right CA file?)", s.caFile)
		}
		return " (the server's certificate is not trusted: for hubsim or a private CA, pass --ca <ca.pem> or set ca_file in the config)"
	case errors.As(err, &hostErr):
		return " (the certificate is for another host name: check HostName in the connection string and any --resolve entry)"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf(" (%s does not resolve: for hubsim or a lab host, map it with --resolve %s:443=<ip:port> or resolve: in the config)", dnsErr.Name, dnsErr.Name)
	case errors.As(err, &opErr) && opErr.Addr != nil:
		for _, r := range s.resolveArgs {
			if _, to, ok := strings.Cut(r, "="); ok && to == opErr.Addr.String() {
				return fmt.Sprintf(" (connecting to %s because of the resolve entry %q: is it still right?)", to, r)
			}
		}
	case errors.Is(err, service.ErrUnauthorized):
		return " (the credential was refused: porthole needs a service connection string of a shared access policy with ServiceConnect and RegistryRead, e.g. \"service\" or \"iothubowner\"; the DPS one needs \"provisioningserviceowner\")"
	}
	return ""
}

// checkServiceString rejects a device connection string where a service
// one is needed, saying which kind is needed and where to find it.
func checkServiceString(cs, what string) error {
	if _, err := auth.ParseServiceConnectionString(cs); err == nil {
		return nil
	}
	if dc, err := auth.ParseDeviceConnectionString(cs); err == nil && dc.DeviceID != "" {
		if what == "DPS" {
			return usagef("DPS: this is a device connection string (it has DeviceId=); porthole needs the Device Provisioning Service's " +
				"service connection string, HostName=<dps>.azure-devices-provisioning.net;SharedAccessKeyName=…;SharedAccessKey=…, " +
				"of a policy with enrollment write (Azure portal: DPS → Settings → Shared access policies → provisioningserviceowner)")
		}
		return usagef("%s: this is a device connection string (it has DeviceId=); porthole needs a hub's service connection string, "+
			"HostName=…;SharedAccessKeyName=…;SharedAccessKey=…, of a shared access policy with ServiceConnect and RegistryRead "+
			"(Azure portal: IoT hub → Security settings → Shared access policies → service; or: az iot hub connection-string show --policy-name service)", what)
	}
	return nil // other problems are reported by the client with its own message
}
