package relay

import (
	"sort"
	"time"
)

// OpenStream is a stream that has not ended, as the dashboard lists it.
type OpenStream struct {
	ID, Hub, DeviceID, ModuleID, Name string
	// Policy is the shared access policy (skn) of the service request that
	// asked for the stream, as its DeviceStreams records carry it.
	Policy  string
	Created time.Time
	// Connected is when both sides were up; zero while one is missing.
	Connected time.Time
	// Bytes forwarded so far in each direction.
	BytesToDevice, BytesToService int64
}

// Open lists the streams that have not ended, oldest first.
func (r *Relay) Open() []OpenStream {
	r.mu.Lock()
	out := make([]OpenStream, 0, len(r.streams))
	for _, st := range r.streams {
		out = append(out, OpenStream{ID: st.id, Hub: st.spec.Hub, DeviceID: st.spec.DeviceID, ModuleID: st.spec.ModuleID,
			Name: st.spec.Name, Policy: st.spec.Policy, Created: st.created, Connected: st.connected,
			BytesToDevice: st.bytes[serviceSide].Load(), BytesToService: st.bytes[deviceSide].Load()})
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}
