package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HubSample is one hub's numbers at scrape time.
type HubSample struct {
	Hub                     string
	Devices, Connected      int
	Connects, Disconnects   int64
	MessagesIn, MessagesOut int64
	TwinGets, TwinPatches   int64
	MethodCalls             int64
	C2DQueued, C2DDelivered int64
	Throttled               int64
}

// StreamSample is one hub's streaming numbers at scrape time.
type StreamSample struct {
	Hub                                        string
	Open, Total                                int64
	BytesDeviceToService, BytesServiceToDevice int64
}

// DPSSample is the provisioning service's numbers at scrape time.
type DPSSample struct {
	Registrations, Lookups, Polls  int
	Outcomes                       map[string]int
	ThrottledQuota, ThrottledFault int
}

// Sources are read at every scrape; any may be nil.
type Sources struct {
	Hubs    func() []HubSample
	Streams func() []StreamSample
	DPS     func() DPSSample
}

var (
	descDevices      = prometheus.NewDesc("hubsim_devices", "Registered device identities.", []string{"hub"}, nil)
	descConnected    = prometheus.NewDesc("hubsim_devices_connected", "Devices with a live MQTT connection.", []string{"hub"}, nil)
	descConnects     = prometheus.NewDesc("hubsim_connects_total", "Accepted MQTT connections.", []string{"hub"}, nil)
	descDisconnects  = prometheus.NewDesc("hubsim_disconnects_total", "Ended MQTT connections.", []string{"hub"}, nil)
	descMessagesIn   = prometheus.NewDesc("hubsim_messages_in_total", "Device-to-cloud telemetry messages accepted.", []string{"hub"}, nil)
	descMessagesOut  = prometheus.NewDesc("hubsim_messages_out_total", "PUBLISHes sent to devices (C2D, methods, twin, streams).", []string{"hub"}, nil)
	descTwinOps      = prometheus.NewDesc("hubsim_twin_operations_total", "Twin reads and updates, device and service side.", []string{"hub", "op"}, nil)
	descMethodCalls  = prometheus.NewDesc("hubsim_method_calls_total", "Direct method invocations.", []string{"hub"}, nil)
	descC2D          = prometheus.NewDesc("hubsim_c2d_messages_total", "Cloud-to-device messages queued and delivered.", []string{"hub", "state"}, nil)
	descThrottled    = prometheus.NewDesc("hubsim_throttled_total", "429 answers of the hub's service REST API.", []string{"hub"}, nil)
	descStreamsOpen  = prometheus.NewDesc("hubsim_streams_open", "Device streams not ended (waiting or connected).", []string{"hub"}, nil)
	descStreamsTotal = prometheus.NewDesc("hubsim_streams_total", "Device streams created.", []string{"hub"}, nil)
	descStreamBytes  = prometheus.NewDesc("hubsim_stream_bytes_total", "Bytes forwarded by the streaming endpoint.", []string{"hub", "direction"}, nil)
	descDPSRequests  = prometheus.NewDesc("hubsim_dps_requests_total", "DPS device API requests.", []string{"kind"}, nil)
	descDPSOutcomes  = prometheus.NewDesc("hubsim_dps_registrations_total", "DPS registrations by outcome.", []string{"outcome"}, nil)
	descDPSThrottled = prometheus.NewDesc("hubsim_dps_throttled_total", "DPS device requests answered 429.", []string{"reason"}, nil)
	allDescs         = []*prometheus.Desc{descDevices, descConnected, descConnects, descDisconnects, descMessagesIn, descMessagesOut, descTwinOps, descMethodCalls, descC2D, descThrottled, descStreamsOpen, descStreamsTotal, descStreamBytes, descDPSRequests, descDPSOutcomes, descDPSThrottled}
)

// collector reads Sources at scrape time.
type collector struct{ src Sources }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if c.src.Hubs != nil {
		for _, h := range c.src.Hubs() {
			gauge(descDevices, float64(h.Devices), h.Hub)
			gauge(descConnected, float64(h.Connected), h.Hub)
			counter(descConnects, float64(h.Connects), h.Hub)
			counter(descDisconnects, float64(h.Disconnects), h.Hub)
			counter(descMessagesIn, float64(h.MessagesIn), h.Hub)
			counter(descMessagesOut, float64(h.MessagesOut), h.Hub)
			counter(descTwinOps, float64(h.TwinGets), h.Hub, "get")
			counter(descTwinOps, float64(h.TwinPatches), h.Hub, "patch")
			counter(descMethodCalls, float64(h.MethodCalls), h.Hub)
			counter(descC2D, float64(h.C2DQueued), h.Hub, "queued")
			counter(descC2D, float64(h.C2DDelivered), h.Hub, "delivered")
			counter(descThrottled, float64(h.Throttled), h.Hub)
		}
	}
	if c.src.Streams != nil {
		for _, s := range c.src.Streams() {
			gauge(descStreamsOpen, float64(s.Open), s.Hub)
			counter(descStreamsTotal, float64(s.Total), s.Hub)
			counter(descStreamBytes, float64(s.BytesDeviceToService), s.Hub, "device_to_service")
			counter(descStreamBytes, float64(s.BytesServiceToDevice), s.Hub, "service_to_device")
		}
	}
	if c.src.DPS != nil {
		d := c.src.DPS()
		counter(descDPSRequests, float64(d.Registrations), "register")
		counter(descDPSRequests, float64(d.Lookups), "lookup")
		counter(descDPSRequests, float64(d.Polls), "poll")
		for _, o := range []string{"assigned", "failed", "disabled", "unauthorized"} {
			counter(descDPSOutcomes, float64(d.Outcomes[o]), o)
		}
		counter(descDPSThrottled, float64(d.ThrottledQuota), "quota")
		counter(descDPSThrottled, float64(d.ThrottledFault), "fault")
	}
}

// Handler serves the metrics of src in Prometheus text format.
func Handler(src Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
