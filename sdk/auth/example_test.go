package auth_test

import (
	"fmt"
	"time"

	"github.com/porthole-iot/porthole/sdk/auth"
)

// A device client keeps a Signer and asks it for a fresh token at every
// connect, renewing when the current one is close to expiry.
func ExampleNewDeviceSigner() {
	cs, err := auth.ParseDeviceConnectionString("HostName=hub.example;DeviceId=dev1;SharedAccessKey=cGFzc3dvcmQ=")
	if err != nil {
		panic(err)
	}
	fmt.Println(cs) // the key is redacted

	clock := func() time.Time { return time.Unix(1700000000, 0) } // injected for the example
	signer, err := cs.Signer(clock)
	if err != nil {
		panic(err)
	}
	token, expiry, err := signer.Sign(time.Hour)
	if err != nil {
		panic(err)
	}
	fmt.Println(auth.Redact(token))
	fmt.Println(expiry.UTC().Format(time.RFC3339))

	parsed, _ := auth.ParseToken(token)
	fmt.Println("renew now:", parsed.ExpiresWithin(clock(), 10*time.Minute))
	// Output:
	// HostName=hub.example;DeviceId=dev1;SharedAccessKey=…
	// SharedAccessSignature sr=hub.example%2Fdevices%2Fdev1&sig=…&se=1700003600
	// 2023-11-14T23:13:20Z
	// renew now: false
}

// A device in an enrollment group derives its own key from the group key
// and its registration id, then signs its DPS registration with it.
func ExampleDeriveGroupKey() {
	deviceKey, err := auth.DeriveGroupKey(
		"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
		"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if err != nil {
		panic(err)
	}
	fmt.Println(deviceKey)
	token, _ := auth.DPSToken("0ne00000001", "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", deviceKey, time.Unix(1700003600, 0))
	fmt.Println(auth.Redact(token))
	// Output:
	// Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=
	// SharedAccessSignature sr=0ne00000001%2Fregistrations%2Fsn-007-888-abc-mac-a1-b2-c3-d4-e5-f6&sig=…&se=1700003600&skn=registration
}
