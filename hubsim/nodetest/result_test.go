package nodetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// resultMarker starts the one line of stdout that carries a script's
// result (testdata/lib.js); everything else the SDKs may print is ignored.
const resultMarker = "NODETEST-RESULT "

// scriptResult is the JSON object after resultMarker.
type scriptResult struct {
	OK     bool            `json:"ok"`
	Step   string          `json:"step"`
	Error  json.RawMessage `json:"error"`
	Result json.RawMessage `json:"result"`
}

var errNoResult = errors.New("the script printed no result line")

// parseResult finds the last result line in a script's stdout and decodes it.
func parseResult(stdout []byte) (scriptResult, error) {
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		if line := sc.Bytes(); bytes.HasPrefix(line, []byte(resultMarker)) {
			last = append(last[:0], line[len(resultMarker):]...)
		}
	}
	if err := sc.Err(); err != nil {
		return scriptResult{}, fmt.Errorf("read script output: %w", err)
	}
	if last == nil {
		return scriptResult{}, errNoResult
	}
	var r scriptResult
	if err := json.Unmarshal(last, &r); err != nil {
		return scriptResult{}, fmt.Errorf("result line: %w", err)
	}
	if !r.OK && r.Step == "" {
		return scriptResult{}, errors.New("result line: failure without a step")
	}
	return r, nil
}
