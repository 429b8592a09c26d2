package logsink

import (
	"io"
	"time"
)

// OpenFile opens path for appending records, rotated by size like the
// log's file destination (0600, path.1 … path.maxFiles). A write failure
// is told once on stderr and the file is reopened on the next write. The
// stream audit trail uses it.
func OpenFile(path string, maxSize int64, maxFiles int, stderr io.Writer) (io.WriteCloser, error) {
	if stderr == nil {
		stderr = io.Discard
	}
	rep := &reporter{w: stderr, what: "file " + path, cnt: &counters{}}
	return openRotating(path, maxSize, maxFiles, time.Now, rep)
}
