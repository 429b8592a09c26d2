package relay

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// record is one event line, shaped like an Azure resource-log record of the
// DeviceStreams category. Source for the field names and their types
// (durationMs and properties are strings, properties holds JSON):
// MicrosoftDocs/azure-docs articles/iot-hub/monitor-iot-hub-reference.md,
// "Device streams (preview)" resource-log example.
type record struct {
	Time              string `json:"time"`
	ResourceID        string `json:"resourceId"`
	OperationName     string `json:"operationName"`
	Category          string `json:"category"`
	ResultType        string `json:"resultType"`
	ResultDescription string `json:"resultDescription"`
	Level             string `json:"level"`
	DurationMs        string `json:"durationMs"`
	Properties        string `json:"properties"`
	Location          string `json:"location"`
}

// recordProps is the properties object. deviceId, moduleId, requestName
// (the stream name) and direction follow Azure's example; the rest are
// hubsim's additions for tests and operators.
type recordProps struct {
	DeviceID       string `json:"deviceId"`
	ModuleID       string `json:"moduleId"`
	RequestName    string `json:"requestName"`
	Direction      string `json:"direction"`
	StreamID       string `json:"streamId"`
	Policy         string `json:"skn,omitempty"`
	Status         string `json:"status"`
	Reason         string `json:"reason,omitempty"`
	BytesToDevice  *int64 `json:"bytesToDevice,omitempty"`
	BytesToService *int64 `json:"bytesToService,omitempty"`
}

// resourceID invents an Azure-like resource id for a hub: its name, or the
// first label of its host name when the spec has none; hubsim has no
// subscription, so the subscription id is all zeros.
func resourceID(spec StreamSpec) string {
	name := spec.HubName
	if name == "" {
		name, _, _ = strings.Cut(spec.Hub, ".")
	}
	return "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/HUBSIM" +
		"/PROVIDERS/MICROSOFT.DEVICES/IOTHUBS/" + strings.ToUpper(name)
}

// event writes one event line. status is the operation name and the
// properties' status; reason explains failures.
func (r *Relay) event(st *session, op, reason string, dur time.Duration) {
	r.writeEvent(st, op, op, reason, dur, nil, nil)
}

// closedEvent writes the final event of a stream with its duration (from
// creation) and byte counts.
func (r *Relay) closedEvent(st *session) {
	r.mu.Lock()
	result, reason := st.result, st.endReason
	connected := !st.connected.IsZero()
	r.mu.Unlock()
	toService := st.bytes[deviceSide].Load()
	toDevice := st.bytes[serviceSide].Load()
	if result == "closed" && !connected {
		result = "closedBeforeConnect"
	}
	if result == "closed" {
		reason = ""
	}
	r.log.Info("stream ended", "stream", st.id, "device", st.spec.DeviceID, "result", result,
		"bytesToDevice", toDevice, "bytesToService", toService)
	r.writeEvent(st, "closed", result, reason, r.now().Sub(st.created), &toDevice, &toService)
}

func (r *Relay) writeEvent(st *session, op, status, reason string, dur time.Duration, toDevice, toService *int64) {
	if r.cfg.EventLog == nil {
		return
	}
	props, _ := json.Marshal(recordProps{
		DeviceID:       st.spec.DeviceID,
		ModuleID:       st.spec.ModuleID,
		RequestName:    st.spec.Name,
		Direction:      "c2d",
		StreamID:       st.id,
		Policy:         st.spec.Policy,
		Status:         status,
		Reason:         reason,
		BytesToDevice:  toDevice,
		BytesToService: toService,
	})
	level, resultType := "Information", "Success"
	switch status {
	case "rejected", "timeout", "dropped", "failed", "protocolError":
		level, resultType = "Error", "Failure"
	}
	line, _ := json.Marshal(record{
		Time:              r.now().UTC().Format(time.RFC3339Nano),
		ResourceID:        resourceID(st.spec),
		OperationName:     op,
		Category:          eventCategory,
		ResultType:        resultType,
		ResultDescription: reason,
		Level:             level,
		DurationMs:        strconv.FormatInt(dur.Milliseconds(), 10),
		Properties:        string(props),
		Location:          "hubsim",
	})
	line = append(line, '\n')
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if _, err := r.cfg.EventLog.Write(line); err != nil {
		r.log.Warn("event log write failed", "err", err)
	}
}
