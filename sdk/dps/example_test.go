package dps_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/dps"
)

// Example registers a device of a symmetric-key enrollment group over MQTT
// and connects to the hub DPS assigns. (It needs a real DPS, so it is not
// run as a test.)
func Example() {
	const groupKey = "c2VjcmV0IGdyb3VwIGtleSBvZiAzMiBieXRlcyEhISE=" // from the enrollment group
	deviceKey, err := auth.DeriveGroupKey(groupKey, "gateway-0042")
	if err != nil {
		log.Fatal(err)
	}
	client, err := dps.New(dps.Config{
		IDScope:        "0ne00000001",
		RegistrationID: "gateway-0042",
		Transport:      dps.TransportMQTT,
		SymmetricKey:   deviceKey,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := client.Register(ctx, map[string]string{"model": "gw-1"})
	switch {
	case errors.Is(err, dps.ErrDisabled):
		log.Fatal("this device's enrollment is disabled")
	case err != nil:
		var se *dps.StatusError
		if errors.As(err, &se) && se.StatusCode == 401 {
			log.Fatal("DPS does not know this key")
		}
		log.Fatal(err)
	}
	fmt.Println("connect to", res.AssignedHub, "as", res.DeviceID)
}

// ExampleClient_Lookup asks where a device was assigned without
// registering it again.
func ExampleClient_Lookup() {
	client, err := dps.New(dps.Config{IDScope: "0ne00000001", RegistrationID: "gateway-0042", SymmetricKey: "ZGV2aWNlIGtleSBvZiAzMiBieXRlcyBmb3IgZXhhbXBsZQ=="})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Lookup(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	if res.Assigned() {
		fmt.Println("assigned to", res.AssignedHub)
	}
}
