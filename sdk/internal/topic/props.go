package topic

import (
	"errors"
	"fmt"
	"strings"
)

// Property is one application (user) property.
type Property struct {
	Name, Value string
}

// Properties is a message property bag: the IoT Hub system properties plus
// the application's own, in order. Empty system fields are not sent.
type Properties struct {
	MessageID          string // $.mid
	CorrelationID      string // $.cid
	UserID             string // $.uid
	To                 string // $.to (set by the hub on C2D)
	ContentType        string // $.ct
	ContentEncoding    string // $.ce
	ExpiryTimeUTC      string // $.exp (ISO 8601)
	CreationTimeUTC    string // $.ctime (ISO 8601)
	OutputName         string // $.on (module outputs)
	MessageSchema      string // $.schema
	ConnectionDeviceID string // $.cdid (set by the hub)
	ConnectionModuleID string // $.cmid (set by the hub)
	InterfaceID        string // $.ifid
	ComponentName      string // $.sub
	// User holds application properties in wire order. Decoding puts any
	// name that is not a known system property here, including unknown
	// "$."-names and hub-set names such as "iothub-ack".
	User []Property
}

// systemProps lists the system properties in the order they are encoded.
var systemProps = []struct {
	name  string
	field func(*Properties) *string
}{
	{PropMessageID, func(p *Properties) *string { return &p.MessageID }},
	{PropCorrelationID, func(p *Properties) *string { return &p.CorrelationID }},
	{PropUserID, func(p *Properties) *string { return &p.UserID }},
	{PropTo, func(p *Properties) *string { return &p.To }},
	{PropContentType, func(p *Properties) *string { return &p.ContentType }},
	{PropContentEncoding, func(p *Properties) *string { return &p.ContentEncoding }},
	{PropExpiryTimeUTC, func(p *Properties) *string { return &p.ExpiryTimeUTC }},
	{PropCreationTimeUTC, func(p *Properties) *string { return &p.CreationTimeUTC }},
	{PropOutputName, func(p *Properties) *string { return &p.OutputName }},
	{PropMessageSchema, func(p *Properties) *string { return &p.MessageSchema }},
	{PropConnectionDeviceID, func(p *Properties) *string { return &p.ConnectionDeviceID }},
	{PropConnectionModuleID, func(p *Properties) *string { return &p.ConnectionModuleID }},
	{PropInterfaceID, func(p *Properties) *string { return &p.InterfaceID }},
	{PropComponentName, func(p *Properties) *string { return &p.ComponentName }},
}

// ErrBadProperty is returned (wrapped) for a property that cannot be
// encoded or decoded.
var ErrBadProperty = errors.New("topic: bad property")

// Encode renders the bag as `k=v&k=v` with every name and value escaped by
// [Escape]: system properties first (fixed order), then user properties in
// order. A user property with an empty name, or a name starting with '$'
// (the hub's namespace for system properties), is an error.
func (p Properties) Encode() (string, error) {
	var b strings.Builder
	add := func(name, value string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(Escape(name))
		b.WriteByte('=')
		b.WriteString(Escape(value))
	}
	for _, sp := range systemProps {
		if v := *sp.field(&p); v != "" {
			add(sp.name, v)
		}
	}
	for i, u := range p.User {
		if u.Name == "" {
			return "", fmt.Errorf("%w: user property %d has an empty name", ErrBadProperty, i)
		}
		if u.Name[0] == '$' {
			return "", fmt.Errorf("%w: user property name %q is in the system namespace", ErrBadProperty, u.Name)
		}
		add(u.Name, u.Value)
	}
	return b.String(), nil
}

// DecodeProperties parses a property bag as the hub sends it: pairs
// separated by '&', name and value separated by the first '=', both
// percent-decoded by [Unescape]. Empty pairs are skipped; a name without '='
// has an empty value (C# UrlEncodedDictionarySerializer accepts "key"). A
// repeated system property keeps its last value.
func DecodeProperties(s string) (Properties, error) {
	var p Properties
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		if rawName == "" {
			return Properties{}, fmt.Errorf("%w: empty name in %q", ErrBadProperty, pair)
		}
		name, err := Unescape(rawName)
		if err != nil {
			return Properties{}, fmt.Errorf("%w: name: %w", ErrBadProperty, err)
		}
		value, err := Unescape(rawValue)
		if err != nil {
			return Properties{}, fmt.Errorf("%w: value of %q: %w", ErrBadProperty, name, err)
		}
		if f := systemField(&p, name); f != nil {
			*f = value
			continue
		}
		p.User = append(p.User, Property{Name: name, Value: value})
	}
	return p, nil
}

func systemField(p *Properties, name string) *string {
	if !strings.HasPrefix(name, "$.") {
		return nil
	}
	for _, sp := range systemProps {
		if sp.name == name {
			return sp.field(p)
		}
	}
	return nil
}
