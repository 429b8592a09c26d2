package provision

import "time"

// DefaultHubMaxBackoff caps the wait between two attempts to reach the
// assigned hub: the flow's own connect retries and, through the daemon,
// the hub client's reconnects. DPS keeps sdk/retry's 5-minute ceiling.
//
// Why 60 s. Waits come from sdk/retry: after the n-th failure in a row the
// wait is uniform in [5 s, min(ceiling, 5 s·2^n)] (full jitter above the
// 5 s floor Azure asks for, MicrosoftDocs/azure-docs
// articles/iot-dps/concepts-deploy-at-scale.md). After 4 failures (about
// 1.5 min into an outage) a device sits at the ceiling C, waiting W ~
// U[5 s, C] between attempts.
//
//   - One device: when the network returns, the wait in progress ends at
//     most C later, so the device is back within C plus one connect. On
//     average it waits the residual E[W²]/(2·E[W]): about 20 s for C = 60
//     s, about 100 s for C = 5 min (a 250 s partition took 3 min 45 s to
//     recover with 5 min). "Back within about a minute" needs C ≈ 60 s.
//   - A fleet: N devices cut off together are at independent points of
//     their waits, so their first attempts after the network returns are
//     spread over C with a density of at most 1/E[W] per device: a peak
//     of N/32.5 s⁻¹ for C = 60 s (100,000 devices: about 3,100 new
//     connections per second for under a minute), against N/152.5 s⁻¹
//     for 5 min. IoT Hub throttles new connections (S1 ≥ 100/s per hub,
//     S2 120/s per unit, S3 6,000/s per unit; MicrosoftDocs/azure-docs
//     articles/iot-hub/iot-hub-devguide-quotas-throttling.md); a device it
//     turns away is retried after another jittered wait, so the load above
//     the hub's rate is spread further instead of piling up. A shorter C
//     raises the peak in proportion (30 s: about N/17.5 s⁻¹) for little
//     gain per device; a longer one makes every device wait minutes.
//
// TestHubBackoffSchedule pins the schedule (floor, growth, ceiling, full
// jitter).
const DefaultHubMaxBackoff = 60 * time.Second
