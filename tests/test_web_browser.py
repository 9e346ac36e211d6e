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


def test_readable_on_a_phone(setup, page):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"http://{setup['web']}/")
    page.wait_for_selector("#live.live", timeout=10000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1  # wide tables scroll inside their section, the page does not
    page.screenshot(path=os.path.join(screenshot_dir(), "dashboard-phone.png"), full_page=True)
