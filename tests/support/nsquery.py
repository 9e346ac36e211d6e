"""Ask DNS questions from inside a network namespace: `ip netns exec NS python -m tests.support.nsquery JSON`.

JSON: {"server": ADDR, "port": N, "wait": seconds (retry until an answer), "queries": [[name, type,
{"do": bool, "ecs": "198.51.100.0/24", "tcp": bool}], ...]}. Prints one JSON list: per query its
rcode, flags, the text of each section and the response wire (hex) for offline validation.
"""

from __future__ import annotations

import json
import sys
import time

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode


def ask(server: str, port: int, name: str, rdtype: str, opts: dict) -> dict:
    options = []
    if opts.get("ecs"):
        addr, bits = opts["ecs"].split("/")
        options.append(dns.edns.ECSOption(addr, int(bits)))
    q = dns.message.make_query(name, rdtype, want_dnssec=opts.get("do", True), use_edns=0, options=options,
                               payload=1232)
    if opts.get("cd"):
        q.flags |= dns.flags.CD
    if opts.get("tcp"):
        r = dns.query.tcp(q, server, port=port, timeout=5)
    else:
        r = dns.query.udp_with_fallback(q, server, port=port, timeout=5)[0]
    return {"rcode": dns.rcode.to_text(r.rcode()), "flags": dns.flags.to_text(r.flags).split(),
            "answer": [x.to_text() for x in r.answer], "authority": [x.to_text() for x in r.authority],
            "wire": r.to_wire().hex()}


def main() -> None:
    spec = json.loads(sys.argv[1])
    deadline = time.monotonic() + spec.get("wait", 0)
    out = []
    for name, rdtype, *rest in spec["queries"]:
        opts = rest[0] if rest else {}
        while True:
            try:
                out.append(ask(spec["server"], spec.get("port", 53), name, rdtype, opts))
                break
            except (dns.exception.DNSException, OSError) as exc:
                if time.monotonic() > deadline:
                    out.append({"error": f"{type(exc).__name__}: {exc}"})
                    break
                time.sleep(0.2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
