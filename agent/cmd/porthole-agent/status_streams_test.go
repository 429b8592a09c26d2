package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
)

func TestPrintStreams(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	list := []bridge.StreamInfo{
		{RequestID: "7", StreamID: "ab12", Name: "ssh", Kind: "plain", Target: "127.0.0.1:22", Started: now.Add(-90 * time.Second),
			BytesToTarget: 100, BytesFromTarget: 2000},
		{RequestID: "8", StreamID: "cd34", Name: "porthole-mux-v1", Kind: "mux", Started: now.Add(-time.Hour),
			Conns: []bridge.ConnInfo{{ID: 3, Kind: "dial", Destination: "printer.lan:631", Target: "192.168.1.9:631",
				Started: now.Add(-5 * time.Second), BytesToTarget: 10, BytesFromTarget: 20}}},
	}
	var b bytes.Buffer
	printStreams(&b, list, now)
	want := "" +
		"              plain ssh → 127.0.0.1:22, rid 7, stream ab12, up 1m30s, 100 B in, 2000 B out\n" +
		"              mux porthole-mux-v1 → 1 connections, rid 8, stream cd34, up 1h0m0s, 0 B in, 0 B out\n" +
		"                #3 dial printer.lan:631 → 192.168.1.9:631, up 5s, 10 B in, 20 B out\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
