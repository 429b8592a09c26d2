package topic_test

import (
	"fmt"

	"github.com/porthole-iot/porthole/sdk/internal/topic"
)

// A device sends telemetry with a content type, and handles a stream
// request from the hub.
func Example() {
	t, _ := topic.Telemetry("dev1", "", topic.Properties{
		ContentType: "application/json",
		User:        []topic.Property{{Name: "kind", Value: "heartbeat"}},
	})
	fmt.Println(t)

	req, err := topic.ParseStreamRequest("$iothub/streams/POST/ssh/?$rid=3&$url=wss%3A%2F%2Fsgw%3A443%2Fb%2Fdev1%2F9&$auth=abc")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Name, req.URL, req.Auth)
	fmt.Println(topic.StreamResponse(req.RID, topic.StreamAccept))
	// Output:
	// devices/dev1/messages/events/%24.ct=application%2Fjson&kind=heartbeat
	// ssh wss://sgw:443/b/dev1/9 abc
	// $iothub/streams/res/200/?$rid=3
}
