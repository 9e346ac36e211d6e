"""Prometheus `/metrics`: what the store knows (probes, quorum, BGP, XDP, DNS nodes) plus the
local DNS server's own counters when the app runs inside `gslb serve`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from gslb.store import Store, StoreError
from gslb.web import views


class _Snapshot:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self.families)


async def store_families(store: Store, store_ok: bool, last_ok: float) -> list[Metric]:
    up = GaugeMetricFamily("gslb_store_up", "1 when the store answered this scrape", labels=["store"])
    age = GaugeMetricFamily("gslb_store_last_success_age_seconds", "seconds since the store last answered",
                            labels=["store"])
    families: list[Metric] = [up, age]
    try:
        health = await views.health(store)
        sites = await views.sites(store)
        nodes = await views.nodes(store)
        dataplane = await views.dataplane(store)
    except StoreError:
        up.add_metric([store.url], 0)
        age.add_metric([store.url], time.time() - last_ok if last_ok else float("inf"))
        return families
    up.add_metric([store.url], 1 if store_ok else 0)
    age.add_metric([store.url], 0)
    return [*families, *_health_families(health), *_bgp_families(sites), *_node_families(nodes),
            *_dataplane_families(dataplane)]


def _health_families(health: dict[str, Any]) -> list[Metric]:
    probe_up = GaugeMetricFamily("gslb_probe_up", "a region's verdict on a check (after rise/fall)",
                                 labels=["region", "check"])
    probe_fresh = GaugeMetricFamily("gslb_probe_fresh", "1 while the region's verdict counts",
                                    labels=["region", "check"])
    probe_rtt = GaugeMetricFamily("gslb_probe_rtt_seconds", "smoothed RTT from a region", labels=["region", "check"])
    for check, row in health["cells"].items():
        for region, cell in row.items():
            probe_up.add_metric([region, check], 1 if cell["up"] else 0)
            probe_fresh.add_metric([region, check], 1 if cell["fresh"] else 0)
            if cell["rtt_ms"] is not None:
                probe_rtt.add_metric([region, check], cell["rtt_ms"] / 1000)
    check_up = GaugeMetricFamily("gslb_check_up", "the quorum decision for a check", labels=["check"])
    for check, q in health["quorum"].items():
        check_up.add_metric([check], 1 if q["up"] else 0)
    agent_up = GaugeMetricFamily("gslb_probe_agent_alive", "1 while a region's heartbeat is fresh", labels=["region"])
    for region, a in health["agents"].items():
        agent_up.add_metric([region], 1 if a["alive"] else 0)
    return [probe_up, probe_fresh, probe_rtt, check_up, agent_up]


def _bgp_families(sites: dict[str, Any]) -> list[Metric]:
    bgp = GaugeMetricFamily("gslb_bgp_prefix_state", "1 for the state a site's prefix is in",
                            labels=["site", "prefix", "state"])
    peer = GaugeMetricFamily("gslb_bgp_peer_up", "1 when the BGP session is up", labels=["site", "peer"])
    for site, doc in sites["sites"].items():
        for prefix, st in doc.get("prefixes", {}).items():
            for state in ("announced", "degraded", "draining", "withdrawn"):
                bgp.add_metric([site, prefix, state], 1 if st.get("state") == state else 0)
        for addr, state in doc.get("peers", {}).items():
            peer.add_metric([site, addr], 1 if state == "up" else 0)
    return [bgp, peer]


def _node_families(nodes: dict[str, Any]) -> list[Metric]:
    queries = CounterMetricFamily("gslb_node_queries", "answers sent by a DNS node", labels=["node", "rcode"])
    decisions = CounterMetricFamily("gslb_node_decisions", "GSLB decisions by record and kind",
                                    labels=["node", "record", "type", "decision"])
    qps = GaugeMetricFamily("gslb_node_qps", "a DNS node's recent queries per second", labels=["node"])
    for node, doc in nodes["nodes"].items():
        qps.add_metric([node], float(doc.get("qps", 0)))
        for rcode, n in doc.get("by_rcode", {}).items():
            queries.add_metric([node, str(rcode)], n)
        for key, n in doc.get("by_decision", {}).items():
            decisions.add_metric([node, *split_decision(key)], n)
    return [queries, decisions, qps]


def _dataplane_families(dataplane: dict[str, Any]) -> list[Metric]:
    xdp_p = CounterMetricFamily("gslb_xdp_packets", "packets balanced by XDP", labels=["node", "vip", "backend"])
    xdp_b = CounterMetricFamily("gslb_xdp_bytes", "bytes balanced by XDP", labels=["node", "vip", "backend"])
    for node, doc in dataplane["nodes"].items():
        for vip, v in doc.get("vips", {}).items():
            for backend, b in v.get("backends", {}).items():
                xdp_p.add_metric([node, vip, backend], b.get("packets", 0))
                xdp_b.add_metric([node, vip, backend], b.get("bytes", 0))
    return [xdp_p, xdp_b]


def split_decision(key: str) -> tuple[str, str, str]:
    """"www.gslb.example.com A|eu (fallback)" → (record, type, decision); an older key without a
    record ("eu") keeps its decision with empty record and type."""
    head, sep, decision = key.partition("|")
    if not sep:
        return "", "", key
    name, _, rtype = head.rpartition(" ")
    return (name, rtype, decision) if name else (head, "", decision)


def latency_buckets(latency: list[int]) -> tuple[list[tuple[str, int]], float]:
    """The workers' handler-time counts (below 1, 2, 4 … µs, then everything slower) as cumulative
    Prometheus buckets, and an estimated sum in seconds: each count at its bucket's midpoint
    (the open-ended last bucket at its lower bound, so the estimate errs low)."""
    buckets, running, total = [], 0, 0.0
    for i, n in enumerate(latency[:-1]):
        running += n
        upper = (1 << i) / 1e6
        lower = (1 << (i - 1)) / 1e6 if i else 0.0
        total += n * (lower + upper) / 2
        buckets.append((repr(upper), running))
    running += latency[-1]
    total += latency[-1] * ((1 << (len(latency) - 2)) / 1e6 if len(latency) > 1 else 0.0)
    buckets.append(("+Inf", running))
    return buckets, total


def dns_families(totals: dict[str, Any], zones_by_rcode: list[list], latency: list[int]) -> list[Metric]:
    """The local server's counters (from its workers) as metric families.

    `totals["latency_sum"]` (seconds), when the workers ship it, is the histogram's exact sum;
    without it the sum is estimated from the buckets (`latency_buckets`).
    """
    import dns.rcode
    import dns.rdatatype

    q = CounterMetricFamily("gslb_dns_queries", "answers sent by this server", labels=["zone", "qtype", "rcode"])
    for zone, qtype, rcode, n in zones_by_rcode:
        q.add_metric([zone or "-", dns.rdatatype.to_text(qtype) if qtype else "-", dns.rcode.to_text(rcode)], n)
    d = CounterMetricFamily("gslb_dns_decisions", "GSLB answers by record and decision (pool, fallback, fail-open)",
                            labels=["record", "type", "decision"])
    for key, n in totals.get("decisions", {}).items():
        d.add_metric(list(split_decision(key)), n)
    t = CounterMetricFamily("gslb_dns_truncated", "UDP answers sent truncated (TC)")
    t.add_metric([], totals.get("truncated", 0))
    tcp = CounterMetricFamily("gslb_dns_tcp_queries", "queries over TCP")
    tcp.add_metric([], totals.get("tcp", 0))
    sigs = CounterMetricFamily("gslb_dnssec_signatures", "DNSSEC signing operations in the workers (one per "
                               "distinct RRset and key; a never-seen name's denial costs one)")
    sigs.add_metric([], totals.get("dnssec_signatures", 0))
    native = CounterMetricFamily("gslb_dns_native_answers", "answers the native engine wrote without entering "
                                 "Python (the rest of gslb_dns_queries: Python's, TCP included)")
    native.add_metric([], totals.get("native_answers", 0))
    picks = CounterMetricFamily("gslb_dns_python_decisions", "GSLB decisions the native engine asked Python for "
                                "(its decision cache's misses: a client prefix's first query since health changed)")
    picks.add_metric([], totals.get("python_decisions", 0))
    families: list[Metric] = [q, d, t, tcp, sigs, native, picks]
    families += abuse_families(totals.get("abuse") or {}, totals.get("queries", 0))
    if latency:
        buckets, estimate = latency_buckets(latency)
        exact = totals.get("latency_sum")
        h = HistogramMetricFamily("gslb_dns_processing_seconds", "time to answer one UDP query in the server"
                                  + ("" if exact is not None else " (sum estimated from bucket midpoints)"))
        h.add_metric([], buckets, sum_value=float(exact) if exact is not None else estimate)
        families.append(h)
    return families


RRL_CLASSES = ("positive", "nxdomain", "nodata", "referral", "error")  # gslb.server.rrl.CLASS_NAMES
RRL_ACTIONS = ("limited", "slipped", "dropped", "would_limit")
TCP_REASONS = {"refused_total": ("refused", "max_connections"), "refused_per_client": ("refused", "per_client"),
               "closed_idle_evicted": ("closed", "evicted_for_new"), "closed_idle_timeout": ("closed", "idle_timeout"),
               "closed_message_timeout": ("closed", "message_timeout")}


def abuse_families(a: dict[str, Any], queries: int) -> list[Metric]:
    """RRL, cookies, query limits and TCP limits (gslb.server.abuse_config.stats, summed over the
    workers) as metric families. RRL counts carry the class and the prefix length they were
    counted by (family ipv4 or ipv6 and its configured bits)."""
    if not a:
        return []
    rrl = CounterMetricFamily("gslb_dns_rrl_responses", "responses over the RRL rate: limited = slipped + dropped "
                              "(or would_limit in log-only mode)",
                              labels=["action", "class", "family", "prefix_length"])
    v4, v6 = str(a.get("rrl_ipv4_prefix", 24)), str(a.get("rrl_ipv6_prefix", 56))
    for action in RRL_ACTIONS:
        for cls in RRL_CLASSES:
            total, six = a.get(f"rrl_{action}_{cls}", 0), a.get(f"rrl_{action}6_{cls}", 0)
            rrl.add_metric([action, cls, "ipv4", v4], total - six)
            rrl.add_metric([action, cls, "ipv6", v6], six)
    passed = CounterMetricFamily("gslb_dns_rrl_passed", "responses over the RRL rate sent anyway", labels=["reason"])
    passed.add_metric(["exempt"], a.get("rrl_exempt", 0))
    passed.add_metric(["valid_cookie"], a.get("rrl_cookie_passed", 0))
    seen = CounterMetricFamily("gslb_dns_cookies", "queries by what their COOKIE option said (none: no option)",
                               labels=["status"])
    counted = 0
    for status in ("client_only", "valid", "bad"):
        n = a.get(f"cookies_{status}", 0)
        counted += n
        seen.add_metric([status], n)
    seen.add_metric(["none"], max(0, queries - counted))
    badcookie = CounterMetricFamily("gslb_dns_cookies_badcookie_sent",
                                    "BADCOOKIE answers sent (UDP, bad server cookie)")
    badcookie.add_metric([], a.get("cookies_badcookie_sent", 0))
    limits = CounterMetricFamily("gslb_dns_query_limit_hits", "queries beyond a query limit",
                                 labels=["limit", "action"])
    for limit in ("prefix", "asn"):
        for action in ("refused", "dropped"):
            limits.add_metric([limit, action], a.get(f"query_limit_{limit}_{action}", 0))
    by_asn = CounterMetricFamily("gslb_dns_query_limit_asn_hits", "queries beyond an AS number's cap", labels=["asn"])
    for asn, n in sorted((a.get("query_limit_by_asn") or {}).items()):
        by_asn.add_metric([str(asn)], n)
    tcp = CounterMetricFamily("gslb_dns_tcp_connections", "TCP connections accepted, refused or closed, by reason",
                              labels=["event", "reason"])
    tcp.add_metric(["accepted", ""], a.get("tcp_accepted", 0))
    for key, (event, reason) in TCP_REASONS.items():
        tcp.add_metric([event, reason], a.get(f"tcp_{key}", 0))
    native = GaugeMetricFamily("gslb_dns_limiter_native_workers", "workers whose RRL and query limits run in the "
                               "native engine (the rest: in Python)")
    native.add_metric([], a.get("limiter_native", 0))
    return [rrl, passed, seen, badcookie, limits, by_asn, tcp, native]


def render(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)
