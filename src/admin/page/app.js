// The status page: reads ../stats every 5 s and draws it. No library, nothing inline (the
// page's Content-Security-Policy allows only this origin's files), text set with
// textContent only (URLs and tags come from clients).
"use strict";

const EVERY_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const W = 720, H = 220, PAD = { left: 44, right: 44, top: 12, bottom: 24 };

const $ = (id) => document.getElementById(id);

function el(name, attrs, text) {
  const e = name.startsWith("svg:")
    ? document.createElementNS(SVG, name.slice(4))
    : document.createElement(name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
}

const rate = (r) => (r >= 100 ? r.toFixed(0) : r.toFixed(1));
const percent = (r) => (r === null ? "–" : (100 * r).toFixed(1) + " %");

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  return m + "m " + (s % 60) + "s";
}

// The history's samples are running totals: an interval is the difference of two. Two
// samples of the same second are one (the later counts).
function intervals(history) {
  const cols = history.columns || ["at", "requests", "lookups", "hits", "bytes"];
  const col = (name) => cols.indexOf(name);
  const [at, req, look, hit] = ["at", "requests", "lookups", "hits"].map(col);
  const samples = [];
  for (const s of history.samples || []) {
    if (samples.length && samples[samples.length - 1][at] >= s[at]) samples.pop();
    samples.push(s);
  }
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = b[at] - a[at];
    const lookups = b[look] - a[look];
    out.push({
      at: b[at],
      requests: Math.max(0, b[req] - a[req]),
      rps: Math.max(0, b[req] - a[req]) / dt,
      lookups: lookups,
      hits: b[hit] - a[hit],
      hitRatio: lookups > 0 ? (b[hit] - a[hit]) / lookups : null,
    });
  }
  return out;
}

function chart(points, everySeconds) {
  const svg = el("svg:svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": "requests per second and hit ratio over the last 15 minutes",
    "data-points": points.length,
  });
  const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
  for (let i = 0; i <= 4; i++) {
    const y = y0 - ((y0 - y1) * i) / 4;
    svg.append(el("svg:line", { class: "grid", x1: x0, x2: x1, y1: y, y2: y }));
  }
  if (points.length === 0) {
    svg.append(el("svg:text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" },
      `no history yet: a sample every ${everySeconds} s`));
    return svg;
  }
  const end = points[points.length - 1].at;
  const start = end - 15 * 60;
  const maxRps = Math.max(1, ...points.map((p) => p.rps));
  const x = (t) => x0 + ((x1 - x0) * (t - start)) / (end - start);
  const y = (v, max) => y0 - ((y0 - y1) * v) / max;
  // A gap (no lookups in an interval) breaks the hit ratio's line; a value alone between
  // gaps is drawn as a dot (a zero-length stroke with round caps), not left out.
  const path = (value, max) => {
    let d = "", run = 0;
    const close = () => { if (run === 1) d += "h 0.01 "; run = 0; };
    for (const p of points) {
      const v = value(p);
      if (v === null) { close(); continue; }
      d += (run > 0 ? "L" : "M") + x(p.at).toFixed(1) + " " + y(v, max).toFixed(1) + " ";
      run++;
    }
    close();
    return d.trim();
  };
  const single = points.length === 1;
  const line = (cls, value, max) => {
    if (!single) return el("svg:path", { class: cls, d: path(value, max) });
    const v = value(points[0]);
    return el("svg:circle", { class: cls, cx: x(points[0].at), cy: y(v === null ? 0 : v, max), r: 3 });
  };
  svg.append(line("rps", (p) => p.rps, maxRps));
  svg.append(line("hit", (p) => p.hitRatio, 1));
  const label = (text, attrs) => svg.append(el("svg:text", Object.assign({ class: "axis" }, attrs), text));
  label(rate(maxRps) + "/s", { x: x0 - 4, y: y1 + 10, "text-anchor": "end" });
  label("0", { x: x0 - 4, y: y0, "text-anchor": "end" });
  label("100 %", { x: x1 + 4, y: y1 + 10 });
  label("0 %", { x: x1 + 4, y: y0 });
  label("−15 min", { x: x0, y: H - 6 });
  label("now", { x: x1, y: H - 6, "text-anchor": "end" });
  return svg;
}

function rows(tbody, items, cells, empty) {
  tbody.replaceChildren();
  if (items.length === 0) {
    const td = el("td", { class: "empty", colspan: tbody.parentElement.tHead.rows[0].cells.length }, empty);
    const tr = el("tr", {});
    tr.append(td);
    tbody.append(tr);
    return;
  }
  for (const item of items) {
    const tr = el("tr", {});
    for (const [text, cls] of cells(item)) tr.append(el("td", cls ? { class: cls } : {}, text));
    tbody.append(tr);
  }
}

function draw(s) {
  const history = s.history || { samples: [] };
  const points = intervals(history);
  const last = points[points.length - 1];
  const lookups = points.reduce((n, p) => n + p.lookups, 0);
  const hits = points.reduce((n, p) => n + p.hits, 0);
  $("rps").textContent = last ? rate(last.rps) : "–";
  $("requests").textContent = last ? String(points.reduce((n, p) => n + p.requests, 0)) : "–";
  $("hit-ratio").textContent = lookups > 0 ? percent(hits / lookups) : "–";
  $("entries").textContent = String(s.entries ?? "–");
  $("uptime").textContent = s.uptime_seconds === undefined ? "–" : duration(s.uptime_seconds);
  $("chart").replaceChildren(chart(points, history.every_seconds || 5));

  const used = s.bytes || 0, budget = s.budget || 0;
  const meter = $("memory");
  meter.max = Math.max(budget, 1);
  meter.value = used;
  meter.high = 0.9 * meter.max;
  $("memory-text").textContent = `${bytes(used)} of ${bytes(budget)}` +
    (budget ? ` (${percent(used / budget)})` : "") + `, ${s.entries ?? 0} entries, ${s.evictions ?? 0} evictions`;

  const top = s.top_urls || {};
  const url = (t) => [[t.url, "url"], [String(t.requests), "num"], [bytes(t.bytes), "num"]];
  rows($("top-requests").tBodies[0], top.by_requests || [], url, "none sampled yet");
  rows($("top-bytes").tBodies[0], top.by_bytes || [], url, "none sampled yet");
  $("top-note").textContent = top.sampled_one_in
    ? `Top URLs are estimated from one request in ${top.sampled_one_in}.` : "";

  const pools = s.pools || [];
  $("pools").hidden = pools.length === 0;
  const servers = pools.flatMap((p) => p.servers.map((v) => Object.assign({ site: p.site }, v)));
  rows($("pool-table").tBodies[0], servers, (v) => [
    [v.site], [v.server, "url"],
    [v.healthy ? "healthy" : "unhealthy", v.healthy ? "healthy" : "unhealthy"],
    [v.backup ? "backup" : ""], [String(v.outstanding), "num"],
  ], "no pools");

  rows($("purges").tBodies[0], s.purges || [], (p) => [
    [p.at], [p.kind], [p.what, "url"], [p.soft ? "soft" : ""], [String(p.purged), "num"],
  ], "none since start");
}

function status(state, text) {
  const e = $("state");
  e.dataset.state = state;
  e.textContent = text;
}

async function refresh() {
  try {
    const r = await fetch("../stats", { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) {
      let why = r.statusText;
      try { why = (await r.json()).error || why; } catch (_) { /* not JSON */ }
      status("error", `/stats answered ${r.status}: ${why}`);
      console.error("edgecache: /stats answered", r.status, why);
      return;
    }
    draw(await r.json());
    status("ok", "updated " + new Date().toLocaleTimeString());
  } catch (e) {
    status("error", "cannot read /stats: " + e);
    console.error("edgecache: cannot read /stats", e);
  }
}

refresh();
setInterval(refresh, EVERY_MS);
