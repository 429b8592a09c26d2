// hubsim dashboard: live overview counters and the telemetry tail, both
// through server-sent events. No framework, no build step.
"use strict";

function followOverview() {
  const es = new EventSource("/hubsim/ui/live");
  es.onmessage = (m) => {
    const d = JSON.parse(m.data);
    for (const el of document.querySelectorAll("[data-live]")) {
      const v = d[el.dataset.live];
      if (v !== undefined) el.textContent = String(v);
    }
    const rows = document.getElementById("hub-rows");
    if (rows && d.hubs) {
      d.hubs.forEach((h, i) => {
        const tr = rows.rows[i];
        if (!tr || tr.cells.length !== h.length) return;
        // cell 0 holds the host name link, which does not change
        for (let j = 1; j < h.length; j++) tr.cells[j].textContent = String(h[j]);
      });
    }
    for (const pl of document.querySelectorAll("polyline[data-chart]")) {
      const p = d.charts && d.charts[pl.dataset.chart];
      if (p !== undefined) pl.setAttribute("points", p);
    }
  };
}

function followEvents() {
  const table = document.getElementById("events");
  const state = document.getElementById("tap-state");
  const body = table.tBodies[0];
  const q = new URLSearchParams({hub: table.dataset.hub, device: table.dataset.device, contains: table.dataset.contains});
  const es = new EventSource("/hubsim/ui/events/stream?" + q.toString());
  es.onopen = () => { state.textContent = "following " + table.dataset.hub; };
  es.onerror = () => { state.textContent = "tap closed; retrying…"; };
  es.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    const tr = document.createElement("tr");
    if (ev.dropped !== undefined) {
      tr.append(cell(""), cell(""), cell(""), cell(ev.dropped + " events dropped (the page fell behind)"));
    } else {
      let text = "";
      try { text = atob(ev.body || ""); } catch (e) { text = "(binary)"; }
      const props = Object.entries(ev.properties || {}).map(([k, v]) => k + "=" + v).join(" ");
      tr.append(cell(ev.time || ""), cell(ev.deviceId || ""), cell(props), cell(text));
    }
    body.prepend(tr);
    while (body.rows.length > 200) body.deleteRow(-1);
  };
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "overview") followOverview();
  if (page === "events" && document.getElementById("events").dataset.hub) followEvents();
});
