package ui

import (
	"bytes"
	"sync"
)

// LogRing keeps the last lines written to it (the DeviceStreams event
// log, teed by the sim) for the streams page's recent history.
type LogRing struct {
	mu      sync.Mutex
	max     int
	lines   [][]byte // oldest first
	partial []byte
}

// maxLogLine bounds one kept line; longer ones are dropped.
const maxLogLine = 16 << 10

// NewLogRing keeps the last n lines.
func NewLogRing(n int) *LogRing { return &LogRing{max: max(n, 1)} }

// Write keeps every complete line of p; it never fails.
func (l *LogRing) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			if len(l.partial) > maxLogLine {
				l.partial = nil
			}
			return len(p), nil
		}
		line := bytes.TrimSpace(l.partial[:i])
		l.partial = l.partial[i+1:]
		if len(line) == 0 || len(line) > maxLogLine {
			continue
		}
		l.lines = append(l.lines, bytes.Clone(line))
		if len(l.lines) > l.max {
			l.lines = l.lines[len(l.lines)-l.max:]
		}
	}
}

// Lines returns the kept lines, newest first.
func (l *LogRing) Lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]byte, len(l.lines))
	for i, ln := range l.lines {
		out[len(l.lines)-1-i] = ln
	}
	return out
}
