package main

import (
	"fmt"
	"io"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
)

// printStreams lists the open streams under the status's streams line:
// who asked (request and stream id, which the hub's DeviceStreams records
// tie to a service policy), where to, since when, bytes each way; and the
// connections inside a multiplexed stream.
func printStreams(w io.Writer, list []bridge.StreamInfo, now time.Time) {
	for _, s := range list {
		dest := s.Target
		if s.Kind == "mux" {
			dest = fmt.Sprintf("%d connections", len(s.Conns))
		}
		fmt.Fprintf(w, "%-*s%s %s → %s, rid %s, stream %s, up %s, %d B in, %d B out\n", statusLabelWidth, "",
			s.Kind, s.Name, dest, orDash(s.RequestID), orDash(s.StreamID), now.Sub(s.Started).Round(time.Second),
			s.BytesToTarget, s.BytesFromTarget)
		for _, c := range s.Conns {
			fmt.Fprintf(w, "%-*s  #%d %s %s → %s, up %s, %d B in, %d B out\n", statusLabelWidth, "",
				c.ID, c.Kind, c.Destination, c.Target, now.Sub(c.Started).Round(time.Second), c.BytesToTarget, c.BytesFromTarget)
		}
	}
}
