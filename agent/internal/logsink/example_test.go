package logsink_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/logsink"
)

// ExampleNew builds the agent's logger from the config's log section,
// raises the level on reload, and masks a token that slipped into a log
// call.
func ExampleNew() {
	cfg := config.Default().Log // stderr, text, info
	sink, err := logsink.New(cfg, logsink.Options{Stderr: os.Stdout})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sink.Close()
	log := sink.Logger()

	log.Debug("not shown at info")
	sink.SetLevel(slog.LevelDebug) // SIGHUP with log.level: debug
	log.Debug("shown", "device", "dev1", "token", "SharedAccessSignature sr=x&sig=abc&se=1")
	fmt.Println("dropped:", sink.Stats().Dropped)
}
