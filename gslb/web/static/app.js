// The dashboard: fetch each section from the JSON API, refresh a section when the server says
// (server-sent events) that its part of the store changed. Plain JS, no external assets.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const ago = (t) => t ? `${Math.max(0, Math.round(Date.now() / 1000 - t))}s ago` : "never";
const token = () => sessionStorage.getItem("gslb-token") || "";

async function getJSON(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

async function write(method, path, body) {
  const r = await fetch(path, {method, headers: {"Authorization": `Bearer ${token()}`, "Content-Type": "application/json"},
                               body: body ? JSON.stringify(body) : undefined});
  const data = await r.json().catch(() => ({}));
  $("admin-result").textContent = r.ok ? "done" : `${r.status}: ${data.error || "failed"}`;
  return r.ok;
}

function rttColour(ms, max) {
  if (ms == null) return "#eaeef2";
  const f = Math.min(1, ms / Math.max(max, 1));
  const hue = 120 - 120 * f;              // green → red
  return `hsl(${hue}, 65%, 45%)`;
}

async function renderHealth() {
  const h = await getJSON("/api/health");
  let rows = `<tr><th>endpoint (check)</th>${h.regions.map((r) => `<th>${esc(r)}${h.agents[r] && !h.agents[r].alive ? " ✝" : ""}</th>`).join("")}<th>decision</th><th></th></tr>`;
  let lat = `<tr><th>endpoint</th>${h.regions.map((r) => `<th>${esc(r)}</th>`).join("")}</tr>`;
  let max = 0;
  for (const c of h.checks) for (const r of h.regions) { const v = h.cells[c][r]; if (v && v.rtt_ms != null && v.fresh) max = Math.max(max, v.rtt_ms); }
  for (const c of h.checks) {
    const cells = h.regions.map((r) => {
      const v = h.cells[c][r];
      if (!v) return `<td><span class="cell unknown">–</span></td>`;
      const state = !v.fresh ? "stale" : v.up ? "up" : "down";
      const title = `${r}: ${state}, checked ${ago(v.checked_at)}${v.error ? " — " + v.error : ""}`;
      return `<td><span class="cell ${state}" data-check="${esc(c)}" data-region="${esc(r)}" title="${esc(title)}">${state}</span></td>`;
    }).join("");
    const q = h.quorum[c];
    const decision = q ? (q.up ? "up" : "down") : "unknown";
    const override = q && q.override ? ` (override ${q.override})` : "";
    const admin = q && q.override
      ? `<button class="small" data-clear="${esc(c)}">clear override</button>`
      : `<button class="small" data-force="${esc(c)}" data-status="${decision === "down" ? "up" : "down"}">force ${decision === "down" ? "up" : "down"}</button>`;
    rows += `<tr><td class="check" title="${esc(c)}">${esc(c)}</td>${cells}<td><span class="cell ${decision}" data-quorum="${esc(c)}">${decision}</span>${esc(override)}</td><td>${admin}</td></tr>`;
    lat += `<tr><td class="check" title="${esc(c)}">${esc(c)}</td>${h.regions.map((r) => {
      const v = h.cells[c][r];
      const ms = v && v.fresh ? v.rtt_ms : null;
      return `<td style="background:${rttColour(ms, max)};color:#fff">${ms == null ? "" : ms.toFixed(1)}</td>`;
    }).join("")}</tr>`;
  }
  $("health").innerHTML = h.checks.length ? rows : "<tr><td>no probe results yet</td></tr>";
  $("latency").innerHTML = h.checks.length ? lat : "";
  $("latency-legend").innerHTML = `<span class="swatch" style="background:${rttColour(0, max)}"></span> 0 ms
    <span class="swatch" style="background:${rttColour(max / 2, max)}"></span> ${(max / 2).toFixed(1)} ms
    <span class="swatch" style="background:${rttColour(max, max)}"></span> ${max.toFixed(1)} ms (slowest now)`;
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
    const action = doc.drain ? `<button class="small" data-undrain="${esc(site)}">undrain</button>` : `<button class="small" data-drain="${esc(site)}">drain</button>`;
    for (const [prefix, st] of Object.entries(doc.prefixes || {}).sort()) {
      rows += `<tr><td>${esc(site)}${doc.stale ? " (stale)" : ""}</td><td>${esc(prefix)}</td><td class="state-${esc(st.state)}" data-prefix="${esc(site + " " + prefix)}">${esc(st.state)}</td><td>${ago(st.since)}</td><td>${esc(st.reason)}</td><td>${peers}</td><td>${action}</td></tr>`;
    }
  }
  $("bgp").innerHTML = Object.keys(s.sites).length ? rows : "<tr><td>no site publishes BGP state</td></tr>";
}

async function renderNodes() {
  const n = await getJSON("/api/nodes");
  let rows = "<tr><th>node</th><th>qps</th><th>queries</th><th>answer mix (rcode)</th><th>GSLB decisions</th><th>seen</th></tr>";
  for (const [node, d] of Object.entries(n.nodes).sort()) {
    const mix = Object.entries(d.by_rcode || {}).map(([k, v]) => `${esc(k)} ${v}`).join(", ");
    const dec = Object.entries(d.by_decision || {}).map(([k, v]) => `${esc(k)} ${v}`).join(", ");
    rows += `<tr><td>${esc(node)}</td><td>${Number(d.qps || 0).toFixed(1)}</td><td>${d.queries || 0}</td><td>${mix}</td><td>${dec}</td><td>${ago(d.time)}</td></tr>`;
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

const sections = {
  probe: [renderHealth], region: [renderHealth], override: [renderHealth],
  answers: [renderAnswers], site: [renderBgp], drain: [renderBgp], node: [renderNodes], dataplane: [renderXdp],
};
const all = [renderHealth, renderAnswers, renderBgp, renderNodes, renderXdp, renderLog];

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
  const t = ev.target;
  if (t.dataset.force) { await write("PUT", `/api/overrides/${encodeURIComponent(t.dataset.force)}`, {status: t.dataset.status}); }
  else if (t.dataset.clear) { await write("DELETE", `/api/overrides/${encodeURIComponent(t.dataset.clear)}`); }
  else if (t.dataset.drain) { await write("POST", `/api/sites/${encodeURIComponent(t.dataset.drain)}/drain`, {reason: "dashboard"}); }
  else if (t.dataset.undrain) { await write("DELETE", `/api/sites/${encodeURIComponent(t.dataset.undrain)}/drain`); }
});
$("reload").addEventListener("click", () => write("POST", "/api/reload"));
$("token").value = token();
$("token").addEventListener("change", (e) => sessionStorage.setItem("gslb-token", e.target.value));
setInterval(() => refresh([renderHealth]), 5000); // ages and stale marks move with the clock
refresh(all);
connect();
