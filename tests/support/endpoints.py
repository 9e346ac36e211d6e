"""Real little HTTP(S)/TCP endpoints on loopback addresses, for probes to check."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Endpoint:
    """An HTTP server on (address, port) whose status and body the test controls.

    `stop()` closes the listening socket (connection refused); `start()` opens it again.
    """

    def __init__(self, address: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.address, self.port, self.tls = address, port, tls
        self.status, self.body = 200, b"ok"
        self.failing_sources: set[str] = set()  # clients that get 503 (a region that sees it down)
        self.hosts: list[str] = []  # Host headers seen
        self.sni: list[str | None] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Endpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.hosts.append(self.headers.get("Host", ""))
                self.send_response(503 if self.client_address[0] in endpoint.failing_sources else endpoint.status)
                self.send_header("Content-Length", str(len(endpoint.body)))
                self.end_headers()
                self.wfile.write(endpoint.body)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer((self.address, self.port), Handler, bind_and_activate=False)
        server.allow_reuse_address = True
        server.daemon_threads = True
        server.server_bind()
        server.server_activate()
        if self.tls is not None:
            ctx = self.tls

            def remember(sock, name, _ctx) -> None:
                endpoint.sni.append(name)

            ctx.sni_callback = remember
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def free_port_on(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def self_signed_context() -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (openssl from Debian)."""
    d = tempfile.mkdtemp(prefix="gslb-tls-")
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=www.example.com"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
