// The dashboard: fetch each section from the JSON API, refresh a section when the server says
// (server-sent events) that its part of the store changed. Charts are small hand-written SVG.
// Plain JS, no external assets.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const ago = (t) => t ? `${Math.max(0, Math.round(Date.now() / 1000 - t))}s ago` : "never";
const token = () => sessionStorage.getItem("gslb-token") || "";
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});

async function getJSON(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

// -- writes: disabled with the reason when they cannot work; the outcome shown at the button --

let server = {writes: true, reason: ""};
const notes = new Map(); // button key → {text, ok, until}

function whyNoWrite() {
  if (!server.writes) return server.reason || "writes are disabled on this server";
  if (!token()) return "read-only: enter the admin token (admin ▸ token) to change things";
  return "";
}

function button(key, label, attrs) {
  const why = whyNoWrite();
  return `<button class="small" data-key="${esc(key)}" ${attrs}${why ? ` disabled title="${esc(why)}"` : ""}>${esc(label)}</button>`;
}

function applyWriteState() {
  const why = whyNoWrite();
  $("write-hint").hidden = !why;
  $("write-hint").textContent = why;
  const reload = $("reload");
  reload.disabled = !!why;
  reload.title = why;
  showNotes();
}

function showNotes() {
  const now = Date.now();
  for (const [key, n] of notes) if (n.until < now) notes.delete(key);
  document.querySelectorAll("button[data-key]").forEach((b) => {
    let span = b.nextElementSibling;
    if (!span || !span.classList.contains("note")) {
      span = document.createElement("span");
      span.className = "note";
      span.setAttribute("role", "status");
      b.after(span);
    }
    const n = notes.get(b.dataset.key);
    span.textContent = n ? n.text : "";
    span.className = `note ${n ? (n.ok ? "ok" : "error") : ""}`;
    span.dataset.noteFor = b.dataset.key;
  });
}

async function write(button, method, path, body) {
  const key = button.dataset.key;
  let text, ok;
  try {
    const r = await fetch(path, {method, headers: {"Authorization": `Bearer ${token()}`, "Content-Type": "application/json"},
                                 body: body ? JSON.stringify(body) : undefined});
    const data = await r.json().catch(() => ({}));
    ok = r.ok;
    if (ok) text = data.message || "done";
    else {
      const hint = r.status === 401 ? " — check the token under admin" : r.status === 403 ? " — the server accepts no writes" : "";
      const known = data.known ? ` (known: ${data.known.slice(0, 5).join(", ")}${data.known.length > 5 ? ", …" : ""})` : "";
      text = `failed: ${r.status} ${data.error || r.statusText}${known}${hint}`;
    }
  } catch (e) {
    ok = false;
    text = `failed: ${e.message}`;
  }
  notes.set(key, {text, ok, until: Date.now() + (ok ? 8000 : 30000)});
  showNotes();
  return ok;
}

// -- latency: one absolute colour scale, with a legend ------------------------------------

const RTT_SCALE = [[10, "#1a7f37", "#fff"], [50, "#7fc97f", "#1f2328"], [100, "#f2cc60", "#1f2328"],
                   [200, "#f0883e", "#1f2328"], [Infinity, "#cf222e", "#fff"]];

function rttColour(ms) {
  if (ms == null) return ["#eaeef2", "#57606a"];
  for (const [limit, bg, fg] of RTT_SCALE) if (ms < limit) return [bg, fg];
  return ["#cf222e", "#fff"];
}

function legend() {
  let lower = 0;
  return RTT_SCALE.map(([limit, bg, fg]) => {
    const label = limit === Infinity ? `≥ ${lower} ms` : `< ${limit} ms`;
    lower = limit;
    return `<span class="swatch" style="background:${bg};color:${fg}">${label}</span>`;
  }).join(" ") + ` <span class="swatch" style="background:#eaeef2;color:#57606a">no sample</span>`;
}

// -- small SVG charts ------------------------------------------------------------------------

function sparkline(points, since, now) {
  const W = 90, H = 22;
  const pts = (points || []).filter((p) => p[1] != null);
  if (pts.length < 2) return `<svg class="spark" data-points="${pts.length}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" aria-hidden="true"></svg>`;
  const max = Math.max(...pts.map((p) => p[1]), 1);
  const start = Math.max(since, points[0][0]); // a young series fills the sparkline
  const x = (t) => ((t - start) / Math.max(1, now - start)) * W;
  const y = (v) => H - 2 - (v / max) * (H - 4);
  const line = pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  const downs = (points || []).filter((p) => !p[2]).map((p) => `<rect x="${x(p[0]).toFixed(1)}" y="0" width="1.5" height="${H}" fill="#cf222e" opacity=".5"/>`).join("");
  return `<svg class="spark" data-points="${pts.length}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" aria-label="RTT over time, max ${max.toFixed(1)} ms">${downs}<polyline points="${line}" fill="none" stroke="#0969da" stroke-width="1.2"/></svg>`;
}

const REGION_COLOURS = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a"];

function bigChart(check, series, since, now) {
  const W = 800, H = 220, L = 44, B = 22;
  const all = series.flatMap((s) => s.points.filter((p) => p[1] != null).map((p) => p[1]));
  const max = Math.max(1, ...all) * 1.1;
  const x = (t) => L + ((t - since) / Math.max(1, now - since)) * (W - L - 6);
  const y = (v) => H - B - (v / max) * (H - B - 8);
  let svg = "";
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    svg += `<line x1="${L}" x2="${W - 6}" y1="${y(v)}" y2="${y(v)}" stroke="#eaeef2"/><text x="${L - 4}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`;
  }
  for (let i = 0; i <= 4; i++) {
    const t = since + ((now - since) / 4) * i;
    svg += `<text x="${x(t)}" y="${H - 6}" text-anchor="middle">${clock(t)}</text>`;
  }
  const keys = series.map((s, i) => {
    const colour = REGION_COLOURS[i % REGION_COLOURS.length];
    const pts = s.points.filter((p) => p[1] != null);
    if (pts.length) svg += `<polyline points="${pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ")}" fill="none" stroke="${colour}" stroke-width="1.5"/>`;
    return `<span><span class="dot" style="background:${colour}"></span>${esc(s.region)} (${pts.length} points)</span>`;
  }).join(" ");
  return `<div class="chart-head"><strong class="check">${esc(check)}</strong> <span class="muted">RTT (ms), last ${Math.round((now - since) / 60)} min</span>
    <button class="small" id="chart-close">close</button></div>
    <svg class="big" data-points="${all.length}" viewBox="0 0 ${W} ${H}" preserveAspectRatio="xMidYMid meet">${svg}</svg><div class="keys">${keys}</div>`;
}

// bands: [[start, end, state]] → rects in a 1000-wide strip
const BAND_COLOURS = {up: "#1a7f37", down: "#cf222e", stale: "#9a6700", unknown: "#8c959f", announced: "#1a7f37",
                      degraded: "#9a6700", draining: "#8250df", withdrawn: "#cf222e", gone: "#8c959f"};

function bandStrip(bands, since, now, cls) {
  const x = (t) => ((t - since) / Math.max(1, now - since)) * 1000;
  const rects = bands.map(([a, b, s]) => {
    const base = s.split(" ")[0];
    return `<rect x="${x(a).toFixed(2)}" width="${Math.max(0.5, x(b) - x(a)).toFixed(2)}" y="0" height="10" fill="${BAND_COLOURS[base] || "#8c959f"}" data-state="${esc(s)}"><title>${esc(s)} ${clock(a)}–${clock(b)}</title></rect>`;
  }).join("");
  return `<svg class="strip ${cls || ""}" data-bands="${bands.length}" viewBox="0 0 1000 10" preserveAspectRatio="none">${rects}</svg>`;
}

const RCODE_COLOURS = {NOERROR: "#2da44e", NXDOMAIN: "#0969da", SERVFAIL: "#cf222e", REFUSED: "#f0883e", FORMERR: "#8250df"};

function nodeChart(points, since, now) {
  const W = 1000, H = 50;
  const x = (t) => ((t - since) / Math.max(1, now - since)) * W;
  const max = Math.max(1, ...points.map((p) => Math.max(p[1], Object.values(p[2]).reduce((a, b) => a + b, 0))));
  let bars = "";
  for (let i = 1; i < points.length; i++) {
    const [t0] = points[i - 1], [t1, , mix] = points[i];
    let base = H;
    for (const [rcode, rate] of Object.entries(mix).sort()) {
      const h = (rate / max) * (H - 2);
      base -= h;
      bars += `<rect x="${x(t0).toFixed(2)}" width="${Math.max(0.5, x(t1) - x(t0)).toFixed(2)}" y="${base.toFixed(2)}" height="${h.toFixed(2)}" fill="${RCODE_COLOURS[rcode] || "#8c959f"}" opacity=".6"><title>${esc(rcode)} ${rate.toFixed(1)}/s</title></rect>`;
    }
  }
  const line = points.map((p) => `${x(p[0]).toFixed(1)},${(H - (p[1] / max) * (H - 2)).toFixed(1)}`).join(" ");
  return `<svg class="strip tall" data-points="${points.length}" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${bars}<polyline points="${line}" fill="none" stroke="#1f2328" stroke-width="1.5" vector-effect="non-scaling-stroke"/></svg>`;
}

function axis(since, now) {
  let ticks = "";
  for (let i = 0; i <= 4; i++) ticks += `<span style="left:${i * 25}%">${clock(since + ((now - since) / 4) * i)}</span>`;
  return `<div class="row axis"><div class="label"></div><div class="ticks">${ticks}</div></div>`;
}

// -- sections -----------------------------------------------------------------------------

let lastHealth = null, lastRtt = null, chartCheck = null;

async function renderHealth() {
  const h = await getJSON("/api/health");
  lastHealth = h;
  let rows = `<tr class="head"><th>endpoint (check)</th>${h.regions.map((r) => `<th>${esc(r)}${h.agents[r] && !h.agents[r].alive ? " ✝" : ""}</th>`).join("")}<th>decision</th><th></th></tr>`;
  for (const c of h.checks) {
    const cells = h.regions.map((r) => {
      const v = h.cells[c][r];
      if (!v) return `<td class="region" data-label="${esc(r)}"><span class="cell unknown">–</span></td>`;
      const state = !v.fresh ? "stale" : v.up ? "up" : "down";
      const title = `${r}: ${state}, checked ${ago(v.checked_at)}${v.error ? " — " + v.error : ""}`;
      const ms = v.rtt_ms == null ? "" : `<span class="ms">${v.rtt_ms.toFixed(1)} ms</span>`;
      return `<td class="region" data-label="${esc(r)}"><span class="cell ${state}" data-check="${esc(c)}" data-region="${esc(r)}" title="${esc(title)}">${state}</span>${ms}</td>`;
    }).join("");
    const q = h.quorum[c];
    const decision = q ? (q.up ? "up" : "down") : "unknown";
    const override = q && q.override ? ` (override ${q.override})` : "";
    const admin = q && q.override
      ? button(`clear|${c}`, "clear override", `data-clear="${esc(c)}"`)
      : button(`force|${c}`, `force ${decision === "down" ? "up" : "down"}`, `data-force="${esc(c)}" data-status="${decision === "down" ? "up" : "down"}"`);
    rows += `<tr data-endpoint="${esc(c)}"><td class="check">${esc(c)}</td>${cells}<td class="region" data-label="decision"><span class="cell ${decision}" data-quorum="${esc(c)}">${decision}</span>${esc(override)}</td><td class="admin">${admin}</td></tr>`;
  }
  $("health").innerHTML = h.checks.length ? rows : "<tr><td>no probe results yet</td></tr>";
  renderLatency();
  showNotes();
}

function renderLatency() {
  const h = lastHealth;
  if (!h) return;
  const series = new Map((lastRtt ? lastRtt.series : []).map((s) => [`${s.region}|${s.check}`, s.points]));
  const since = lastRtt ? lastRtt.since : h.time - 3600, now = lastRtt ? lastRtt.now : h.time;
  let lat = `<tr class="head"><th>endpoint</th>${h.regions.map((r) => `<th>${esc(r)}</th>`).join("")}</tr>`;
  for (const c of h.checks) {
    lat += `<tr data-endpoint="${esc(c)}"><td class="check">${esc(c)}</td>${h.regions.map((r) => {
      const v = h.cells[c][r];
      const ms = v && v.fresh ? v.rtt_ms : null;
      const [bg, fg] = rttColour(ms);
      return `<td class="region lat" data-label="${esc(r)}" data-lat-check="${esc(c)}" data-lat-region="${esc(r)}" title="click for the last hour of ${esc(c)}"><span class="rtt" style="background:${bg};color:${fg}">${ms == null ? "–" : ms.toFixed(1)}</span>${sparkline(series.get(`${r}|${c}`), since, now)}</td>`;
    }).join("")}</tr>`;
  }
  $("latency").innerHTML = h.checks.length ? lat : "";
  $("latency-legend").innerHTML = legend();
}

async function renderLatencyChart() {
  if (!chartCheck) { $("latency-chart").hidden = true; return; }
  const d = await getJSON(`/api/history/rtt?check=${encodeURIComponent(chartCheck)}&since=-${windowSeconds()}&points=600`);
  $("latency-chart").innerHTML = bigChart(chartCheck, d.series, d.since, d.now);
  $("latency-chart").hidden = false;
}

const windowSeconds = () => Number($("window").value) || 3600;

async function renderTimeline() {
  const w = windowSeconds();
  const [health, bgp, nodes] = await Promise.all([getJSON(`/api/history/health?since=-${w}`), getJSON(`/api/history/bgp?since=-${w}`),
                                                  getJSON(`/api/history/nodes?since=-${w}`)]);
  const since = health.since, now = health.now;
  let html = axis(since, now);
  for (const [check, t] of Object.entries(health.checks)) {
    html += `<div class="group"><div class="row"><div class="label check" title="${esc(check)}">${esc(check)}</div><div></div></div>`;
    for (const [region, bands] of Object.entries(t.regions)) {
      html += `<div class="row"><div class="label">${esc(region)}</div>${bandStrip(bands, since, now, "region")}</div>`;
    }
    html += `<div class="row"><div class="label"><strong>quorum</strong></div>${bandStrip(t.quorum, since, now, "quorum")}</div></div>`;
  }
  for (const [site, s] of Object.entries(bgp.sites)) {
    const prefixes = new Set(s.changes.flatMap((c) => Object.keys(c.prefixes || {})));
    for (const prefix of prefixes) {
      const bands = [];
      s.changes.forEach((c, i) => {
        const end = i + 1 < s.changes.length ? s.changes[i + 1].t : now;
        const state = c.gone ? "gone" : (c.prefixes[prefix] || "gone");
        bands.push([Math.max(c.t, since), end, state + (c.reasons && c.reasons[prefix] ? ` — ${c.reasons[prefix]}` : "")]);
      });
      html += `<div class="row"><div class="label">BGP ${esc(site)} ${esc(prefix)}</div>${bandStrip(bands, since, now, "bgp")}</div>`;
    }
  }
  for (const [node, n] of Object.entries(nodes.nodes)) {
    const last = n.points[n.points.length - 1];
    html += `<div class="row"><div class="label">DNS ${esc(node)}<br><span class="muted">${last ? last[1].toFixed(1) : "0"} q/s now</span></div>${nodeChart(n.points, since, now)}</div>`;
  }
  const rk = Object.entries(RCODE_COLOURS).map(([k, c]) => `<span><span class="dot" style="background:${c}"></span>${k}</span>`).join(" ");
  html += `<p class="legend">bands: <span class="dot" style="background:#1a7f37"></span>up/announced <span class="dot" style="background:#cf222e"></span>down/withdrawn
    <span class="dot" style="background:#9a6700"></span>stale/degraded <span class="dot" style="background:#8250df"></span>draining
    <span class="dot" style="background:#8c959f"></span>unknown · DNS: line = queries/s, bars = answers/s by rcode ${rk}</p>`;
  $("timeline").innerHTML = Object.keys(health.checks).length || Object.keys(nodes.nodes).length || Object.keys(bgp.sites).length
    ? html : "<p class='muted'>no history yet</p>";
}

async function renderHistory() {
  lastRtt = await getJSON(`/api/history/rtt?since=-3600&points=60`);
  renderLatency();
  await Promise.all([renderTimeline(), renderLatencyChart()]);
}

async function renderAnswers() {
  const a = await getJSON("/api/answers");
  const names = Object.keys(a.names).sort();
  $("answers").innerHTML = names.length ? names.map((key) => {
    const n = a.names[key];
    const pools = Object.entries(n.pools || {}).map(([p, values]) => `<tr><td>${esc(p)}</td><td>${values.map((v) =>
      `<span class="cell ${v.up ? "up" : "down"}" title="${esc(v.check || "")}">${esc(v.value)}</span>`).join(" ")}</td></tr>`).join("");
    const regions = Object.entries(n.by_region || {}).map(([r, d]) => `<tr><td>${esc(r)}</td><td>${esc(d.rule)}</td><td>${esc(d.pool ?? "record values")}${d.fallback ? " (fallback)" : ""}${d.fail_open ? " (fail-open)" : ""}</td><td>${esc((d.values || []).join(", "))}</td></tr>`).join("");
    return `<div class="name"><h3>${esc(key)} <span class="muted">policy ${esc(n.policy)}</span></h3>
      <div class="scroll"><table><tr><th>pool</th><th>values</th></tr>${pools}</table></div>
      <div class="scroll"><table><tr><th>region</th><th>rule</th><th>pool</th><th>answer</th></tr>${regions}</table></div></div>`;
  }).join("") : "<p class='muted'>no GSLB names published yet</p>";
}

async function renderBgp() {
  const s = await getJSON("/api/sites");
  let rows = "<tr><th>site</th><th>prefix</th><th>state</th><th>since</th><th>reason</th><th>peers</th><th></th></tr>";
  for (const [site, doc] of Object.entries(s.sites).sort()) {
    const peers = Object.entries(doc.peers || {}).map(([p, st]) => `${esc(p)} ${esc(st)}`).join(", ");
    const action = doc.drain ? button(`undrain|${site}`, "undrain", `data-undrain="${esc(site)}"`) : button(`drain|${site}`, "drain", `data-drain="${esc(site)}"`);
    for (const [prefix, st] of Object.entries(doc.prefixes || {}).sort()) {
      rows += `<tr><td>${esc(site)}${doc.stale ? " (stale)" : ""}</td><td>${esc(prefix)}</td><td class="state-${esc(st.state)}" data-prefix="${esc(site + " " + prefix)}">${esc(st.state)}</td><td>${ago(st.since)}</td><td>${esc(st.reason)}</td><td>${peers}</td><td>${action}</td></tr>`;
    }
  }
  $("bgp").innerHTML = Object.keys(s.sites).length ? rows : "<tr><td>no site publishes BGP state</td></tr>";
  showNotes();
}

// RRL, cookies, query and TCP limits of one node (views.limiter): the counters that moved
function limiterText(l) {
  if (!l) return "";
  const parts = [];
  if (l.rrl_limited) parts.push(`RRL limited ${l.rrl_limited} (slipped ${l.rrl_slipped}, dropped ${l.rrl_dropped})`);
  if (l.rrl_would_limit) parts.push(`RRL would limit ${l.rrl_would_limit} (log only)`);
  if (l.rrl_passed) parts.push(`passed over rate ${l.rrl_passed}`);
  if (l.cookies_client_only || l.cookies_valid || l.cookies_bad)
    parts.push(`cookies: client only ${l.cookies_client_only || 0}, valid ${l.cookies_valid}, bad ${l.cookies_bad}`);
  if (l.query_limited) parts.push(`query limits ${l.query_limited}`);
  if (l.tcp_refused || l.tcp_closed) parts.push(`TCP refused ${l.tcp_refused}, closed ${l.tcp_closed}`);
  return parts.length ? parts.map(esc).join("<br>") : '<span class="muted">quiet</span>';
}

async function renderNodes() {
  const n = await getJSON("/api/nodes");
  let rows = "<tr><th>node</th><th>qps</th><th>queries</th><th>answer mix (rcode)</th><th>GSLB decisions</th><th>limiter</th><th>seen</th></tr>";
  for (const [node, d] of Object.entries(n.nodes).sort()) {
    const mix = Object.entries(d.by_rcode || {}).map(([k, v]) => `${esc(k)} ${v}`).join(", ");
    const dec = Object.entries(d.by_decision || {}).map(([k, v]) => `${esc(k)} ${v}`).join(", ");
    rows += `<tr><td>${esc(node)}</td><td>${Number(d.qps || 0).toFixed(1)}</td><td>${d.queries || 0}</td><td>${mix}</td><td>${dec}</td><td class="limiter">${limiterText(d.limiter)}</td><td>${ago(d.time)}</td></tr>`;
  }
  $("nodes").innerHTML = Object.keys(n.nodes).length ? rows : "<tr><td>no DNS node reports yet</td></tr>";
}

async function renderXdp() {
  const x = await getJSON("/api/dataplane");
  let rows = "<tr><th>node</th><th>VIP</th><th>backend</th><th>up</th><th>weight</th><th>packets</th><th>bytes</th></tr>";
  let any = false;
  for (const [node, d] of Object.entries(x.nodes).sort()) {
    for (const [vip, v] of Object.entries(d.vips || {})) {
      for (const [b, s] of Object.entries(v.backends || {})) {
        any = true;
        rows += `<tr><td>${esc(node)}</td><td>${esc(vip)}</td><td>${esc(b)}</td><td>${s.up ? "yes" : "no"}</td><td>${s.weight}</td><td>${s.packets}</td><td>${s.bytes}</td></tr>`;
      }
    }
  }
  $("xdp").innerHTML = any ? rows : "<tr><td>no XDP balancer reports</td></tr>";
}

async function renderLog() {
  const l = await getJSON("/api/log?limit=50");
  const rows = l.entries.slice().reverse().map((e) => `<tr><td>${new Date(e.time * 1000).toLocaleTimeString()}</td><td>${esc(e.kind)}</td><td class="check" title="${esc(e.subject)}">${esc(e.subject)}</td><td>${esc(e.old)} → ${esc(e.new)}</td><td>${esc(e.source)}</td><td>${esc(e.reason)}</td></tr>`).join("");
  $("log").innerHTML = "<tr><th>time</th><th>kind</th><th>subject</th><th>change</th><th>by</th><th>reason</th></tr>" + rows;
}

async function renderStatus() {
  const before = server.writes;
  server = await getJSON("/api/status");
  applyWriteState();
  if (before !== server.writes) await Promise.all([renderHealth(), renderBgp()]);
}

// History is fetched at most every 2 s however fast the store changes.
let historyBusy = null, historyAgain = false;
async function throttledHistory() {
  if (historyBusy) { historyAgain = true; return historyBusy; }
  historyBusy = (async () => {
    try { await renderHistory(); } finally {
      await new Promise((r) => setTimeout(r, 2000));
      historyBusy = null;
      if (historyAgain) { historyAgain = false; throttledHistory(); }
    }
  })();
  return historyBusy;
}

const sections = {
  probe: [renderHealth, throttledHistory], region: [renderHealth], override: [renderHealth, throttledHistory],
  answers: [renderAnswers], site: [renderBgp, throttledHistory], drain: [renderBgp], node: [renderNodes, throttledHistory],
  dataplane: [renderXdp],
};
const all = [renderStatus, renderHealth, renderAnswers, renderBgp, renderNodes, renderXdp, renderLog, throttledHistory];

async function refresh(fns) {
  await Promise.all(fns.map((f) => f().catch((e) => console.warn(e))));
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("hello", () => { $("live").textContent = "live"; $("live").className = "pill live"; refresh(all); });
  es.addEventListener("change", (ev) => {
    const spaces = JSON.parse(ev.data).spaces;
    const fns = new Set([renderLog]);
    for (const s of spaces) (s === "*" ? all : sections[s] || []).forEach((f) => fns.add(f));
    refresh([...fns]);
  });
  es.onerror = () => { $("live").textContent = "reconnecting…"; $("live").className = "pill stale"; };
}

document.addEventListener("click", async (ev) => {
  const t = ev.target.closest("button, td.lat");
  if (!t) return;
  if (t.id === "chart-close") { chartCheck = null; renderLatencyChart(); return; }
  if (t.matches("td.lat")) { chartCheck = t.dataset.latCheck; renderLatencyChart().catch((e) => console.warn(e)); return; }
  if (t.disabled) return;
  let ok = null;
  if (t.dataset.force) ok = await write(t, "PUT", `/api/overrides/${encodeURIComponent(t.dataset.force)}`, {status: t.dataset.status});
  else if (t.dataset.clear) ok = await write(t, "DELETE", `/api/overrides/${encodeURIComponent(t.dataset.clear)}`);
  else if (t.dataset.drain) ok = await write(t, "POST", `/api/sites/${encodeURIComponent(t.dataset.drain)}/drain`, {reason: "dashboard"});
  else if (t.dataset.undrain) ok = await write(t, "DELETE", `/api/sites/${encodeURIComponent(t.dataset.undrain)}/drain`);
  else if (t.id === "reload") ok = await write(t, "POST", "/api/reload");
  if (ok === false) renderStatus().catch(() => {}); // a 403 may mean the server changed its mind
});
$("token").value = token();
$("token").addEventListener("input", (e) => {
  sessionStorage.setItem("gslb-token", e.target.value);
  applyWriteState();
  refresh([renderHealth, renderBgp]);
});
$("window").addEventListener("change", () => refresh([throttledHistory]));
setInterval(() => refresh([renderHealth]), 5000); // ages and stale marks move with the clock
setInterval(() => refresh([throttledHistory]), 15000); // the time axis moves too
setInterval(showNotes, 5000); // notes expire
refresh(all);
connect();
