package admin

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

// Authorization schemes the admin API accepts.
const (
	// schemeBearer carries the admin token (RFC 6750 §2.1), the way
	// Prometheus scrapers send a bearer token.
	schemeBearer = "Bearer "
	// schemeSAS is the scheme word of Azure shared access signatures.
	schemeSAS = "SharedAccessSignature "
)

// ErrUnauthorized is returned by Authorizer.Check for a request without an
// acceptable credential.
var ErrUnauthorized = errors.New("admin: unauthorized")

// Owner is one service whose owner policies may sign admin requests: a hub
// (Resource is its host name) or the DPS (its service host name).
type Owner struct {
	Resource string
	Policies []sas.Policy
	// Rights a policy must hold, all of them, to count as an owner
	// (iothubowner: RegistryRead, RegistryWrite, ServiceConnect,
	// DeviceConnect; provisioningserviceowner: ServiceConfig,
	// EnrollmentRead, EnrollmentWrite, RegistrationStatusRead,
	// RegistrationStatusWrite).
	Rights []string
}

// Authorizer decides whether a request may use the admin API.
type Authorizer struct {
	// Token is the admin token; empty accepts no bearer token.
	Token string
	// Owners are the services whose owner SAS tokens are accepted.
	Owners []Owner
	// Now is the clock for SAS expiry; nil means time.Now.
	Now func() time.Time
}

// Check returns nil when r carries the admin token or an owner SAS, else
// an error wrapping ErrUnauthorized that says why (never the credential).
func (a *Authorizer) Check(r *http.Request) error {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		return fmt.Errorf("%w: no Authorization header (send the admin token from the status file as Bearer, or an owner SAS)", ErrUnauthorized)
	case hasPrefixFold(h, schemeBearer):
		tok := strings.TrimSpace(h[len(schemeBearer):])
		if a.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.Token)) == 1 {
			return nil
		}
		return fmt.Errorf("%w: the bearer token is not hubsim's admin token", ErrUnauthorized)
	case hasPrefixFold(h, schemeSAS):
		now := time.Now
		if a.Now != nil {
			now = a.Now
		}
		t, err := sas.Parse(h)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		for _, o := range a.Owners {
			if !t.Covers(o.Resource) {
				continue
			}
			if err := verifyAll(h, o, now()); err != nil {
				return fmt.Errorf("%w: %v", ErrUnauthorized, err)
			}
			return nil
		}
		return fmt.Errorf("%w: the signature's resource %q is no hub or DPS of this simulator", ErrUnauthorized, t.Resource)
	}
	return fmt.Errorf("%w: unknown Authorization scheme", ErrUnauthorized)
}

// verifyAll checks tok against o's policies for every right o demands.
func verifyAll(tok string, o Owner, now time.Time) error {
	for _, right := range o.Rights {
		if _, err := sas.VerifyPolicy(tok, o.Resource, o.Policies, right, now); err != nil {
			return err
		}
	}
	if len(o.Rights) == 0 {
		_, err := sas.VerifyPolicy(tok, o.Resource, o.Policies, "", now)
		return err
	}
	return nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
