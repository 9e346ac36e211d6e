"""The dashboard in a real browser (Debian's Chromium via Playwright) against a running server,
real probe agents and a real endpoint: the endpoint is stopped and its cells turn red live."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests.support.dnsserver import ROOT, gslb_server
from tests.support.endpoints import Endpoint, free_port_on
from tests.support.procs import free_port, stop, wait_for

CHROMIUM = "/usr/bin/chromium"
ADDRESS = "127.0.0.71"
ZONE = """---
'':
  type: NS
  value: ns1.example.net.
www:
  dynamic:
    pools:
      all:
        values:
        - value: 192.0.2.10
        - status: up  # never probed: tests only ever connect to loopback
          value: 192.0.2.11
    rules:
    - pool: all
  octodns:
    gslb:
      interval: 0.3
      timeout: 0.5
      rise: 2
      fall: 2
      targets:
        192.0.2.10: 127.0.0.71
    healthcheck:
      path: /health
      port: {port}
      protocol: HTTP
  type: A
  value: 192.0.2.10
"""


def why_no_browser() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is not installed (scripts/setup installs Debian's chromium)"
    return None


@pytest.fixture(scope="module")
def setup(redis_url):
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    port = free_port_on(ADDRESS)
    endpoint = Endpoint(ADDRESS, port).start()
    zones = tempfile.mkdtemp(prefix="gslb-web-")
    with open(os.path.join(zones, "gslb.example.yaml"), "w") as f:
        f.write(ZONE.replace("{port}", str(port)))
    agents = [subprocess.Popen([sys.executable, "-m", "gslb", "probe", "--region", region, "--redis", redis_url,
                                "--zones", zones, "--heartbeat", "0.5"], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for region in ("eu-west", "us-east")]
    web = f"127.0.0.1:{free_port()}"
    try:
        with gslb_server(zones, extra_args=("--redis", redis_url, "--web", web),
                         env={"GSLB_WEB_TOKEN": "t0ken"}) as server:
            yield {"server": server, "web": web, "endpoint": endpoint,
                   "check": f"http://{ADDRESS}:{port}/health#www.gslb.example"}
    finally:
        for a in agents:
            stop(a)
        endpoint.stop()
        shutil.rmtree(zones, ignore_errors=True)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="gslb-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, viewport={"width": 1280, "height": 900},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield ctx.new_page()
        ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


def screenshot_dir() -> str:
    d = os.path.join(ROOT, "screenshots")  # git-ignored: look at them after a run
    os.makedirs(d, exist_ok=True)
    return d


def test_an_endpoint_turns_red_live_when_stopped(setup, page):
    origin = f"http://{setup['web']}"
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(origin + "/")
    check = setup["check"]
    quorum = f'[data-quorum="{check}"]'
    page.wait_for_selector(f"{quorum}.up", timeout=15000)
    page.wait_for_selector(f'[data-check="{check}"][data-region="eu-west"].up', timeout=15000)
    page.wait_for_selector("#live.live", timeout=5000)
    setup["endpoint"].stop()
    stopped = time.monotonic()
    page.wait_for_selector(f"{quorum}.down", timeout=10000)  # no reload: the page follows the store
    turned = time.monotonic() - stopped
    for region in ("eu-west", "us-east"):
        page.wait_for_selector(f'[data-check="{check}"][data-region="{region}"].down', timeout=5000)
    print(f"\nendpoint stopped → red in the browser after {turned:.2f}s (fall 2 x 0.3 s)")
    assert turned < 5
    title = page.get_attribute(f'[data-check="{check}"][data-region="eu-west"]', "title")
    assert "refused" in title.lower()  # the last error is shown
    wait_for(lambda: page.locator("#log").inner_text().count("up → down") >= 1, timeout=5, what="change log row")
    answers = page.locator("#answers").inner_text()
    assert "www.gslb.example A" in answers
    path = os.path.join(screenshot_dir(), "dashboard-endpoint-down.png")
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")
    assert os.path.getsize(path) > 10000
    assert all(u.startswith(origin) for u in requests), [u for u in requests if not u.startswith(origin)]
    setup["endpoint"].start()
    page.wait_for_selector(f"{quorum}.up", timeout=15000)


def _state_elements_fit(page) -> list[str]:
    """Every endpoint's state (per region and the decision) is visible and inside the viewport."""
    return page.evaluate("""() => {
      const bad = [];
      const els = document.querySelectorAll(
        "#health [data-check][data-region], #health [data-quorum], #latency td.lat .rtt");
      if (!els.length) bad.push("no state elements");
      for (const el of els) {
        const r = el.getBoundingClientRect();
        const style = getComputedStyle(el);
        if (r.width === 0 || r.height === 0 || style.visibility === "hidden" || r.left < 0
            || r.right > innerWidth + 0.5)
          bad.push(`${el.outerHTML.slice(0, 80)} at ${r.left}..${r.right} of ${innerWidth}`);
      }
      return bad;
    }""")


def test_readable_on_a_phone(setup, page):
    page.set_viewport_size({"width": 400, "height": 844})
    page.goto(f"http://{setup['web']}/")
    page.wait_for_selector("#live.live", timeout=10000)
    check = setup["check"]
    page.wait_for_selector(f'[data-check="{check}"][data-region="us-east"]', timeout=15000)
    page.wait_for_selector(f'[data-quorum="{check}"]', timeout=5000)
    page.wait_for_function("document.querySelectorAll('#timeline svg.strip').length > 0", timeout=15000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0  # wide tables scroll inside their section, the page does not
    assert _state_elements_fit(page) == []
    # stacked: the endpoint's name on its own line above its regions
    # (measured in one evaluate: the table is re-rendered live and elements come and go)
    below = page.evaluate("""(check) => {
      const row = [...document.querySelectorAll("#health tr[data-endpoint]")].find((r) => r.dataset.endpoint === check);
      const name = row.querySelector("td.check").getBoundingClientRect();
      const cell = row.querySelector('[data-region="eu-west"]').getBoundingClientRect();
      return cell.top - name.bottom;
    }""", check)
    assert below >= -1
    page.screenshot(path=os.path.join(screenshot_dir(), "dashboard-phone.png"), full_page=True)


def test_nothing_cut_off_on_a_wide_screen(setup, page):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"http://{setup['web']}/")
    check = setup["check"]
    page.wait_for_selector(f'[data-check="{check}"][data-region="us-east"]', timeout=15000)
    cut = page.evaluate("""() => {
      const bad = [];
      for (const id of ["health", "latency"]) {
        const box = document.getElementById(id).parentElement;
        if (box.scrollWidth > box.clientWidth) bad.push(`#${id} scrolls: ${box.scrollWidth} > ${box.clientWidth}`);
        for (const td of document.querySelectorAll(`#${id} td`))
          if (td.scrollWidth > td.clientWidth + 1) bad.push(`#${id} cell cut: ${td.textContent.slice(0, 60)}`);
      }
      return bad;
    }""")
    assert cut == []
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert _state_elements_fit(page) == []
    legend = page.locator("#latency-legend").inner_text()
    assert "< 10 ms" in legend and "≥ 200 ms" in legend  # an absolute scale, not "slowest now"
    page.screenshot(path=os.path.join(screenshot_dir(), "dashboard-wide.png"), full_page=True)


def test_history_charts_fill_with_probe_rounds(setup, page):
    page.goto(f"http://{setup['web']}/")
    check = setup["check"]
    spark = f'td[data-lat-check="{check}"][data-lat-region="eu-west"] svg.spark'
    page.wait_for_selector(spark, timeout=15000)
    # the probes check every 0.3 s: a few rounds give the sparkline points
    page.wait_for_function(f"(document.querySelector('{spark}')?.dataset.points | 0) >= 3", timeout=20000)
    assert page.locator(f"{spark} polyline").count() == 1
    page.click(f'td[data-lat-check="{check}"][data-lat-region="us-east"]')
    page.wait_for_function("(document.querySelector('#latency-chart svg.big')?.dataset.points | 0) >= 3", timeout=10000)
    assert page.locator("#latency-chart svg.big polyline").count() == 2  # one line per region
    assert "eu-west" in page.locator("#latency-chart").inner_text()
    page.wait_for_selector("#timeline svg.strip.quorum", timeout=15000)
    page.wait_for_function("(document.querySelector('#timeline svg.strip.quorum')?.dataset.bands | 0) >= 1",
                           timeout=10000)
    assert page.locator("#timeline svg.strip.region").count() >= 2  # one band strip per region
    states = set(page.eval_on_selector_all("#timeline svg.strip.quorum rect", "rs => rs.map(r => r.dataset.state)"))
    assert states & {"up", "down"}, states
    page.locator("#history-section").screenshot(path=os.path.join(screenshot_dir(), "dashboard-history.png"))


def test_a_failed_write_says_so_at_the_button(setup, page):
    page.goto(f"http://{setup['web']}/")
    check = setup["check"]
    force = f'#health button[data-force="{check}"]'
    page.wait_for_selector(force, timeout=15000)
    # no token entered: the button cannot work, so it is disabled and says why
    assert page.is_disabled(force)
    assert "token" in page.get_attribute(force, "title")
    assert page.is_visible("#write-hint") and "token" in page.inner_text("#write-hint")
    assert page.is_disabled("#reload")
    # a wrong token: the click fails with the server's message right beside the button
    page.click("#admin summary")
    page.fill("#token", "not-the-token")
    page.wait_for_selector(f"{force}:not([disabled])", timeout=5000)
    page.click(force)
    note = f'{force} + .note.error'
    page.wait_for_selector(note, timeout=5000)
    text = page.inner_text(note)
    assert "401" in text and "wrong bearer token" in text, text
    assert page.is_visible(note)
    page.click("#reload")
    page.wait_for_selector("#reload + .note.error", timeout=5000)
    assert "401" in page.inner_text("#reload + .note.error")
    page.screenshot(path=os.path.join(screenshot_dir(), "dashboard-failed-write.png"), full_page=True)


def test_the_running_servers_metrics_are_a_proper_histogram(setup):
    """The real server's /metrics (its workers' counters): a histogram with _bucket/_sum/_count
    and GSLB decisions labelled by record and type."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(20):
        setup["server"].query("www.gslb.example", "A")

    def scrape() -> dict:
        with urllib.request.urlopen(f"http://{setup['web']}/metrics", timeout=5) as r:
            return {f.name: f for f in text_string_to_metric_families(r.read().decode())}

    wait_for(lambda: "gslb_dns_processing_seconds" in scrape() and any(
        s.value >= 20 for s in scrape()["gslb_dns_processing_seconds"].samples if s.name.endswith("_count")),
        timeout=15, what="the workers' latency histogram in /metrics")
    families = scrape()
    samples = {s.name: s for s in families["gslb_dns_processing_seconds"].samples if "le" not in s.labels}
    inf = next(s for s in families["gslb_dns_processing_seconds"].samples if s.labels.get("le") == "+Inf")
    assert samples["gslb_dns_processing_seconds_count"].value == inf.value >= 20
    assert 0 < samples["gslb_dns_processing_seconds_sum"].value / inf.value < 0.1  # a mean of well under 100 ms
    records = {(s.labels["record"], s.labels["type"]) for s in families["gslb_dns_decisions"].samples}
    assert any(r.startswith("www.gslb.example") and t == "A" for r, t in records), records


def test_dns_node_panel_shows_the_limiter(setup, page):
    """The DNS node panel's limiter column, filled from the node's report: cookie queries the real
    server counted show up there (RRL is off on this server, so it reports cookies only)."""
    import dns.edns
    import dns.message
    import dns.query

    server = setup["server"]
    for _ in range(3):
        q = dns.message.make_query("www.gslb.example", "A", use_edns=0,
                                   options=[dns.edns.GenericOption(10, os.urandom(8))])
        dns.query.udp(q, server.host, port=server.port, timeout=2)
    page.goto(f"http://{setup['web']}/")
    page.wait_for_selector("#nodes td.limiter", timeout=15000)
    page.wait_for_function("[...document.querySelectorAll('#nodes td.limiter')].some("
                           "(td) => /client only [1-9]/.test(td.textContent))", timeout=15000)
    header = page.locator("#nodes tr").first.inner_text()
    assert "limiter" in header
