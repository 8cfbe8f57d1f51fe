// The status page's live part: polls /ui/api/stats every 2 s and fills the page.
// Every value goes in through textContent (never innerHTML), so nothing is interpreted.
"use strict";
(function () {
  const POLL_MS = 2000;
  const charts = {};

  function text(id, value) {
    const el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "unknown";
    if (typeof value === "number") return digits === undefined ? String(value) : value.toFixed(digits);
    return String(value);
  }

  function fill(id, rows) {
    const table = document.getElementById(id);
    if (!table) return;
    const body = table.tBodies[0];
    const fresh = document.createElement("tbody");
    for (const cells of rows) {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.appendChild(td);
      }
      fresh.appendChild(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = table.tHead.rows[0].cells.length;
      td.className = "muted";
      td.textContent = "none";
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    table.replaceChild(fresh, body);
  }

  function cost(row) {
    if (row.cost_usd === null) return "unknown";
    const known = "$" + row.cost_usd.toFixed(6);
    return row.unpriced ? known + " + " + row.unpriced + " unpriced" : known;
  }

  function usageRows(rows) {
    return (rows || []).map((r) => [fmt(r.name), fmt(r.requests), fmt(r.input_tokens), fmt(r.output_tokens), cost(r)]);
  }

  function chart(id, series, columns) {
    const el = document.getElementById(id);
    if (!el || typeof uPlot === "undefined") return;
    const width = Math.max(300, el.clientWidth || 600);
    if (!charts[id]) {
      charts[id] = new uPlot({ width: width, height: 200, series: series, scales: { x: { time: true } } }, columns, el);
    } else {
      charts[id].setData(columns);
    }
  }

  function render(data) {
    text("rps", fmt(data.requests_per_s, 2));
    text("requests", fmt(data.requests));
    text("p50", fmt(data.latency_ms && data.latency_ms.p50));
    text("p99", fmt(data.latency_ms && data.latency_ms.p99));
    text("ttft50", fmt(data.ttft_ms && data.ttft_ms.p50));
    text("ttft99", fmt(data.ttft_ms && data.ttft_ms.p99));
    const cache = data.cache || {};
    text("cache", cache.lookups ? (cache.hit_rate * 100).toFixed(1) + "% of " + cache.lookups : "no lookups");
    const ledger = data.ledger;
    text("ledger", ledger ? ledger.queued + " / " + ledger.written + " / " + ledger.dropped : "off");
    fill("errors", Object.entries(data.errors || {}).map(([k, v]) => [k, String(v)]));
    const usage = data.usage || {};
    for (const id of ["model-hour", "model-day", "key-hour", "key-day"]) fill(id, usageRows(usage[id]));
    fill("routes", (data.routes || []).map((r) => [r.route, r.target, String(r.requests),
      r.error_rate === null || r.error_rate === undefined ? "-" : (r.error_rate * 100).toFixed(1) + "%"]));
    fill("batches", (data.batches || []).map((b) => [b.id, b.status, String(b.total),
      new Date(b.created_at * 1000).toISOString()]));
    fill("recent", (data.recent || []).map((r) => [
      new Date(r.ts * 1000).toISOString().slice(11, 19), fmt(r.key), fmt(r.model), fmt(r.upstream_model),
      String(r.status), r.error_type || "", fmt(r.input_tokens) + " / " + fmt(r.output_tokens),
      fmt(r.latency_ms), r.ttft_ms === null || r.ttft_ms === undefined ? "-" : String(r.ttft_ms),
      r.cache_hit === null || r.cache_hit === undefined ? "-" : (r.cache_hit ? "hit" : "miss")]));
    const series = data.series || [];
    const col = (i) => series.map((p) => p[i]);
    chart("chart-rate", [{}, { label: "requests/s", stroke: "#2563eb" }, { label: "errors/s", stroke: "#dc2626" }],
      [col(0), col(1), col(2)]);
    chart("chart-latency", [{}, { label: "p50", stroke: "#16a34a" }, { label: "p99", stroke: "#9333ea" },
      { label: "TTFT p50", stroke: "#ea580c" }], [col(0), col(3), col(4), col(5)]);
    text("updated", "updated " + new Date(data.now * 1000).toISOString().slice(11, 19) + " UTC");
  }

  async function poll() {
    try {
      const response = await fetch("/ui/api/stats", { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.assign("/ui");
        return;
      }
      if (response.ok) render(await response.json());
      else text("updated", "update failed: HTTP " + response.status);
    } catch (error) {
      text("updated", "update failed: " + error.message);
    }
    window.setTimeout(poll, POLL_MS);
  }

  poll();
})();
