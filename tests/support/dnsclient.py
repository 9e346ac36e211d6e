"""Three DNS clients with one result shape: dnspython, dig (BIND) and kdig (Knot).

Protocol tests run against all three, so a behaviour is proven with independent parsers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype


@dataclass
class Reply:
    rcode: str
    flags: set[str]
    answer: list[tuple[str, int, str, str]] = field(default_factory=list)  # name, ttl, type, rdata
    authority: list[tuple[str, int, str, str]] = field(default_factory=list)
    additional: list[tuple[str, int, str, str]] = field(default_factory=list)
    edns: bool = False
    nsid: str | None = None
    ecs: str | None = None  # "ADDR/SOURCE/SCOPE"
    payload: int | None = None

    def types(self, section: str = "answer") -> list[str]:
        return [r[2] for r in getattr(self, section)]

    def rdatas(self, rtype: str, section: str = "answer") -> set[str]:
        return {r[3] for r in getattr(self, section) if r[2] == rtype}


def _rows(rrsets) -> list[tuple[str, int, str, str]]:
    rows = []
    for rrset in rrsets:
        for rdata in rrset:
            rows.append((rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype),
                         rdata.to_text()))
    return rows


def from_message(m: dns.message.Message) -> Reply:
    r = Reply(rcode=dns.rcode.to_text(m.rcode()), flags=set(dns.flags.to_text(m.flags).lower().split()),
              answer=_rows(m.answer), authority=_rows(m.authority), additional=_rows(m.additional),
              edns=m.edns >= 0, payload=m.payload if m.edns >= 0 else None)
    for opt in m.options:
        if opt.otype == dns.edns.NSID:
            r.nsid = opt.nsid.decode(errors="replace")
        if opt.otype == dns.edns.ECS:
            r.ecs = f"{opt.address}/{opt.srclen}/{opt.scopelen}"
    return r


class PythonClient:
    name = "dnspython"

    def query(self, host: str, port: int, qname: str, rtype: str = "A", *, tcp: bool = False, edns: bool = True,
              nsid: bool = False, subnet: str | None = None, bufsize: int = 1232, rdclass: str = "IN",
              edns_version: int = 0, ednsopt: int | None = None, ignore_trunc: bool = True) -> Reply:
        options = []
        if nsid:
            options.append(dns.edns.GenericOption(dns.edns.NSID, b""))
        if subnet:
            addr, _, bits = subnet.partition("/")
            options.append(dns.edns.ECSOption(addr, int(bits)))
        if ednsopt is not None:
            options.append(dns.edns.GenericOption(ednsopt, b"\x01\x02"))
        q = dns.message.make_query(qname, rtype, rdclass=rdclass, use_edns=edns_version if edns else False,
                                   payload=bufsize, options=options or None)
        if tcp:
            m = dns.query.tcp(q, host, port=port, timeout=3)
        else:
            m = dns.query.udp(q, host, port=port, timeout=3, ignore_trailing=False, raise_on_truncation=False)
        return from_message(m)


_HEADER = re.compile(r"opcode: (\w+)[,;] status: (\w+)[,;] id: (\d+)")
_FLAGS = re.compile(r";; [Ff]lags: ([a-z ]*);")


class TextClient:
    """dig or kdig, parsed from their text output (both print zone-file lines per section)."""

    def __init__(self, tool: str) -> None:
        self.name = tool
        self.path = shutil.which(tool)

    def available(self) -> bool:
        return self.path is not None

    def query(self, host: str, port: int, qname: str, rtype: str = "A", *, tcp: bool = False, edns: bool = True,
              nsid: bool = False, subnet: str | None = None, bufsize: int = 1232, rdclass: str = "IN",
              edns_version: int = 0, ednsopt: int | None = None, ignore_trunc: bool = True) -> Reply:
        args = [self.path, f"@{host}", "-p", str(port), "-c", rdclass, "-t", rtype, qname, "+rec",
                "+nocookie"]
        args += ["+time=3", "+tries=1"] if self.name == "dig" else ["+timeout=3", "+retry=0"]
        args += ["+tcp"] if tcp else ["+notcp"]
        if self.name == "dig":
            args += ["+ignore"] if ignore_trunc else []
        else:
            args += ["+ignore"] if ignore_trunc else []
        if not edns:
            args += ["+noedns"]
        else:
            args += [f"+edns={edns_version}", f"+bufsize={bufsize}"]
            if self.name == "dig":
                args += ["+noednsnegotiation"]
        if nsid:
            args += ["+nsid"]
        if subnet:
            args += [f"+subnet={subnet}"]
        if ednsopt is not None:
            args += [f"+ednsopt={ednsopt}:0102"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=15).stdout
        return self.parse(out)

    def parse(self, out: str) -> Reply:
        header = _HEADER.search(out)
        flags = _FLAGS.search(out)
        if not header or not flags:
            raise AssertionError(f"{self.name} printed no reply:\n{out}")
        reply = Reply(rcode=header.group(2), flags=set(flags.group(1).split()))
        section = None
        for line in out.splitlines():
            stripped = line.strip()
            upper = stripped.upper()
            if upper.startswith(";; ANSWER SECTION"):
                section = reply.answer
                continue
            if upper.startswith(";; AUTHORITY SECTION"):
                section = reply.authority
                continue
            if upper.startswith(";; ADDITIONAL SECTION"):
                section = reply.additional
                continue
            if "EDNS: version" in line or "EDNS: version:" in line or upper.startswith(";; EDNS PSEUDOSECTION") \
                    or upper.startswith(";; OPT PSEUDOSECTION"):
                reply.edns = True
            m = re.search(r"udp: (\d+)", line) or re.search(r"UDP size: (\d+)", line, re.I)
            if m and reply.edns:
                reply.payload = int(m.group(1))
            m = re.search(r'NSID: [^"]*"([^"]*)"', line)
            if m:
                reply.nsid = m.group(1)
            m = re.search(r"CLIENT-SUBNET: ([0-9a-fA-F.:]+)/(\d+)/(\d+)", line, re.I)
            if m:
                reply.ecs = f"{m.group(1)}/{m.group(2)}/{m.group(3)}"
            if not stripped:
                section = None
                continue
            if stripped.startswith(";"):
                continue
            if section is not None:
                parts = stripped.split(None, 4)
                if len(parts) == 5 and parts[2] in ("IN", "CH"):
                    name, ttl, _cls, rtype, rdata = parts
                    section.append((name, int(ttl), rtype, " ".join(rdata.split())))
        return reply


def clients() -> list:
    """All three; dig and kdig come from scripts/setup (dnsutils, knot-dnsutils), so a missing one fails."""
    out: list = [PythonClient()]
    for tool in ("dig", "kdig"):
        c = TextClient(tool)
        if not c.available():
            raise RuntimeError(f"{tool} is not installed: run scripts/setup")
        out.append(c)
    return out
