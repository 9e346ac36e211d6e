"""Client side of the XDP end-to-end test, run inside the client namespace.

Reads JSON commands on stdin, answers JSON on stdout:
  {"op": "open", "ports": [..]}     open one connection per source port; answers {port: backend}
  {"op": "ask"}                     one line on every open connection; answers {port: backend|null}
  {"op": "once", "ports": [..]}     connect, ask once, close (fresh flows); answers {port: backend}
"""

import json
import socket
import sys

VIP, PORT = sys.argv[1], int(sys.argv[2])
conns: dict[int, socket.socket] = {}


def ask(s: socket.socket) -> str | None:
    try:
        s.sendall(b"who\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(64)
            if not chunk:
                return None
            data += chunk
        return data.decode().strip()
    except OSError:
        return None


def connect(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(3)
    s.bind(("0.0.0.0", port))
    s.connect((VIP, PORT))
    return s


for line in sys.stdin:
    cmd = json.loads(line)
    out: dict[str, str | None] = {}
    if cmd["op"] == "open":
        for p in cmd["ports"]:
            conns[p] = connect(p)
            out[str(p)] = ask(conns[p])
    elif cmd["op"] == "ask":
        out = {str(p): ask(s) for p, s in conns.items()}
    elif cmd["op"] == "once":
        for p in cmd["ports"]:
            try:
                s = connect(p)
                out[str(p)] = ask(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()  # RST: no TIME_WAIT, the port can be reused at once
            except OSError as exc:
                out[str(p)] = f"error: {exc}"
    print(json.dumps(out), flush=True)
