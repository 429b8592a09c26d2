package sas

import (
	"fmt"
	"strings"
	"time"
)

// Policy is a shared access policy of a hub or a DPS instance.
type Policy struct {
	Name         string
	PrimaryKey   string // base64
	SecondaryKey string // base64, may be empty
	// Rights the policy grants, e.g. RightRegistryRead. An entry may also be
	// a comma-separated list, as ARM writes them ("RegistryRead, RegistryWrite").
	Rights []string
}

// Has reports whether the policy grants right (case-sensitive, as ARM spells it).
func (p Policy) Has(right string) bool {
	for _, entry := range p.Rights {
		for _, r := range strings.Split(entry, ",") {
			if strings.TrimSpace(r) == right {
				return true
			}
		}
	}
	return false
}

// VerifyPolicy authenticates a service-side token: parse; find the policy
// named by skn (ErrPermission when there is no skn or no such policy);
// verify with its primary or secondary key (ErrBadSignature, ErrExpired);
// check the token covers resource (ErrWrongResource); check the policy
// grants need (ErrPermission; need "" skips the check).
func VerifyPolicy(token string, resource string, policies []Policy, need string, now time.Time) (Token, error) {
	t, err := Parse(token)
	if err != nil {
		return t, err
	}
	if t.KeyName == "" {
		return t, fmt.Errorf("%w: token has no skn, so names no shared access policy", ErrPermission)
	}
	var pol *Policy
	for i := range policies {
		if policies[i].Name == t.KeyName {
			pol = &policies[i]
			break
		}
	}
	if pol == nil {
		return t, fmt.Errorf("%w: no shared access policy named %q", ErrPermission, t.KeyName)
	}
	if err := t.verifyEither(pol.PrimaryKey, pol.SecondaryKey, now); err != nil {
		return t, fmt.Errorf("policy %q: %w", pol.Name, err)
	}
	if !t.Covers(resource) {
		return t, fmt.Errorf("%w: sr %q does not cover %q", ErrWrongResource, t.Resource, resource)
	}
	if need != "" && !pol.Has(need) {
		return t, fmt.Errorf("%w: policy %q lacks right %s", ErrPermission, pol.Name, need)
	}
	return t, nil
}
