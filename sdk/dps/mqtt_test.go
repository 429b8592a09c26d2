package dps

import (
	"context"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// pendingToken is a paho token that never completes.
type pendingToken struct{}

func (pendingToken) Wait() bool                     { return false }
func (pendingToken) WaitTimeout(time.Duration) bool { return false }
func (pendingToken) Done() <-chan struct{}          { return nil }
func (pendingToken) Error() error                   { return nil }

var _ paho.Token = pendingToken{}

// A connection lost while a request waits is a transient error that does
// not repeat "dps:": call adds "dps: <operation>:" (it used to read
// "dps: register: dps: mqtt connection lost").
func TestMQTTConnectionLostText(t *testing.T) {
	s := &mqttSession{lost: make(chan struct{})}
	close(s.lost)
	err := s.wait(context.Background(), pendingToken{})
	if err == nil || err.Error() != "mqtt connection lost" {
		t.Fatalf("err %q, want %q", err, "mqtt connection lost")
	}
	if k := retry.Classify(err).Kind; k != retry.Backoff {
		t.Errorf("classified %v, want Backoff", k)
	}
}
