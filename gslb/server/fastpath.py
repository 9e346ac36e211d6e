"""The per-query hot path: parse header, question and OPT by hand, look up, patch, send.

`Responder.answer` handles every query. The common case (one IN question, no or a plain OPT
record, a compiled entry) costs a label walk, one dict lookup and a byte join. Anything unusual
drops to `_slow`, which is careful rather than fast, and which never raises: a malformed packet
gets FORMERR or is dropped. A name the table lacks is answered from the template of its closest
stop name (`_from_template`), the same bytes the native engine assembles: no compile per name.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, cast

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
from dns.rdatatype import RdataType

from gslb.dnssec import denial
from gslb.server import cookies as _cookies
from gslb.server import native, wire
from gslb.server.resolve import Zones
from gslb.server.table import (
    CH,
    FORMERR,
    IN,
    NOTIMP,
    REFUSED,
    SIGNED_PER_NAME,
    Compiler,
    Entry,
    Template,
    build_template,
    chaos_entries,
    compile_answer,
    compile_table,
    header_only,
    qname_wire,
)
from gslb.zone.bulk import BulkZone, is_bulk, origin_wire

log = logging.getLogger(__name__)

MISS_CACHE_MAX = 200_000  # compiled odd-type (and DNAME, GSLB wildcard, signed) answers kept per snapshot
TEMPLATE_MAX = 50_000  # templates (closest encloser x type x class) kept per snapshot
RELOCATED_MAX = 200_000  # their answers for other prefix lengths (each template has at most 255)
_WALKS = 8  # template builds one miss may cause (each adds stop names, so the walk only deepens)
_ONE_Q_NO_AR = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_ONE_Q_ONE_AR = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_AXFR = RdataType.AXFR.to_bytes(2, "big")
_IXFR = RdataType.IXFR.to_bytes(2, "big")
_ANY = RdataType.ANY.to_bytes(2, "big")
_BADVERS_HDR = struct.pack(">HHHHH", wire.QR, 1, 0, 0, 1)
_OPT_ROOT = b"\x00\x00\x29"
_ECS_CODE = b"\x00\x08"


@dataclass
class Snapshot:
    """Everything one generation of zones answers from. Swapped whole on reload."""

    zones: Zones
    table: dict[bytes, Entry]
    compile: Compiler = compile_answer  # Answer → Entry; the engine's makes GSLB names per-client
    _stops: frozenset[bytes] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, zones: Zones, compile_: Compiler = compile_answer) -> Snapshot:
        return cls(zones, compile_table(zones, compile_), compile_)

    def stop_names(self) -> frozenset[bytes]:
        """Every name of every zone (lower-cased wire): where a template walk stops."""
        stops = getattr(self, "_stops", None)
        if stops is None:
            stops = frozenset(qname_wire(name) for zone in self.zones
                              for name in ((zone.origin,) if is_bulk(zone) else zone.names))
            self._stops = stops
        return stops


class Stats:
    """Per-process counters beside the per-entry hits; the server ships them to the metrics."""

    __slots__ = ("by_rcode", "dropped", "formerr", "tcp", "truncated")

    def __init__(self) -> None:
        self.tcp = 0
        self.truncated = 0
        self.dropped = 0
        self.formerr = 0
        self.by_rcode: dict[int, int] = {}  # header-only error answers (FORMERR, NOTIMP, ...)


class Responder:
    """Answers queries from a `Snapshot`; `swap` replaces it atomically (one reference store)."""

    # DNS cookies (RFC 7873/9018): answered by default with a per-node random secret made when
    # this module is imported (before the workers fork, so all of a node's workers share it);
    # gslb.server.abuse_config.install replaces it with the configured one.
    cookies: _cookies.Cookies = _cookies.Cookies.random()

    def __init__(self, snapshot: Snapshot, identity: str, version: str | None, udp_size: int = 1232) -> None:
        self.identity = identity.encode()
        self.udp_size = udp_size
        self._opt_head = wire.opt_record(udp_size, False)[:-2]  # all but RDLENGTH
        self._opt_head_do = wire.opt_record(udp_size, True)[:-2]
        self._valid_ecs: set[bytes] = set()  # ECS options already validated
        self.chaos = chaos_entries(identity, version)
        self.stats = Stats()
        self.retired: dict[tuple[str, int, int], int] = {}
        # The C answer engine (None: pure Python). It mirrors `table` and `misses` and holds the
        # GSLB decisions; what it cannot answer comes to `answer` unchanged.
        self.engine = native.new_engine(udp_size, self._opt_head, self._opt_head_do)
        self.swap(snapshot)

    def swap(self, snapshot: Snapshot) -> None:
        if hasattr(self, "table"):
            self._retire()
        table = dict(snapshot.table)
        table.update(self.chaos)
        self.snapshot = snapshot
        self.misses: dict[bytes, Entry] = {}
        self.templates: dict[bytes, Template | None] = {}  # None: answered per name instead
        self._relocated = 0  # answers the templates hold for prefix lengths other than the sample's
        self._stops = set(snapshot.stop_names())
        self._bulk = self._bulk_zones(snapshot.zones)
        self.table = table  # last: the hot path reads only this reference
        if self.engine is not None:
            self.engine.load(table)  # also forgets the misses, templates, stops and decisions
            self.engine.add_stops(list(self._stops))
            self.engine.set_bulk([zone.store for _wire, zone in self._bulk])
        self.invalidate()

    @staticmethod
    def _bulk_zones(zones: Zones) -> list[tuple[bytes, BulkZone]]:
        """The zones answered from a native store, each told which other zones we serve (a
        zone below one takes its names; a CNAME into another is answered here, in Python)."""
        wires = {zone.origin: origin_wire(zone.origin) for zone in zones}
        out = []
        for zone in zones:
            if isinstance(zone, BulkZone):
                zone.store.set_others([w for origin, w in wires.items() if origin != zone.origin])
                out.append((wires[zone.origin], zone))
        return out

    def _bulk_zone(self, key: bytes) -> BulkZone | None:
        """The bulk zone answering a key's name (strictly below its apex), if any."""
        nend = len(key) - 4
        for owire, zone in self._bulk:
            start = nend - len(owire)
            if start <= 0 or key[start:nend] != owire:
                continue
            pos = 0
            while pos < start:
                pos += key[pos] + 1
            if pos == start and self.snapshot.zones.find(dns.name.from_wire(key, 0)[0]) is zone:
                return zone
        return None

    def _bulk_entry(self, zone: BulkZone, key: bytes) -> Entry:
        """The answer from the zone's store (the bytes the engine sends), or where it declines
        (ANY, meta types, a chain into another zone) from the resolver, into the miss cache."""
        found = zone.store.answer(key)
        if found is None:
            return self._compile_miss(key)
        rcode, an, ns, tail = found
        entry = Entry(wire.QR | wire.AA | rcode, an, ns, 0, tail, zone.name, qtype=int.from_bytes(key[-4:-2], "big"))
        self._keep(key, entry)
        return entry

    def take_bulk_counts(self) -> None:
        """What the engine answered from bulk stores, into the running totals."""
        for _wire, zone in self._bulk:
            for rcode, qtype, n in zone.store.take_counts():
                key = (zone.name, max(qtype, 0), rcode)
                self.retired[key] = self.retired.get(key, 0) + n

    def invalidate(self) -> None:
        """Health or zones changed: forget every cached GSLB decision (the native ones here; the
        Python ones live in `Answers.decision_cache`, which `Answers.set_health` empties)."""
        if self.engine is not None:
            self.engine.flush_decisions()

    def _native_pick(self, entry: Entry, client: bytes, ecs: bytes | None
                     ) -> tuple[Entry, int, bool, str, dict, tuple[tuple[Entry, int], ...]]:
        """The engine's decision-cache miss: decide as `entry.pick` does, and say whether the
        decision may be cached as one answer, which counter it counts into, and for `pick:
        random` the weighted answers the engine may draw from itself (empty: ask again)."""
        decide = getattr(entry.pick, "decide", None)
        if decide is None:  # a picker that cannot say: never cached
            picked, scope = entry.pick(client, ecs)  # type: ignore[misc]  # engine calls only with a picker
            return picked, scope, False, "", {}, ()
        picked, scope, sticky, label, draws = decide(client, ecs, native=True)
        return picked, scope, sticky, label, entry.pick.decisions, draws  # type: ignore[union-attr]  # decide's owner has it

    # -- counters -------------------------------------------------------------------------

    def entries(self, extra: list[dict] | None = None, shared: bool = True) -> Iterator[Entry]:
        """Every entry answers can come from now (each object appears in exactly one place), its
        C-side hits folded in first. `shared=False`: of the compiled table only the CHAOS answers,
        the rest being what this worker made itself (misses, templates, `extra`): a forked worker
        counts the shared entries it used apart (`generation.SharedEntry`)."""
        if self.engine is not None:  # native answers counted in C: fold them into Entry.hits
            self.stats.truncated += self.engine.harvest()
        self.take_bulk_counts()
        for source in (self.table if shared else self.chaos, self.misses, *(extra or [])):
            for entry in list(source.values()):
                yield entry
                if entry.signed is not None:
                    yield entry.signed
        for template in list(self.templates.values()):
            if template is not None:
                yield from template.entries()
        yield from (REFUSED, NOTIMP, FORMERR)

    def _retire(self, extra: list[dict] | None = None) -> None:
        """Fold the hits of entries about to be dropped into the running totals."""
        for entry in self.entries(extra):
            if entry.hits:
                key = (entry.zone, entry.qtype, entry.rcode)
                self.retired[key] = self.retired.get(key, 0) + entry.hits
                entry.hits = 0

    def _live_counts(self, extra: list[dict] | None = None) -> dict[tuple[str, int, int], int]:
        out: dict[tuple[str, int, int], int] = {}
        for entry in self.entries(extra):
            if entry.hits:
                key = (entry.zone, entry.qtype, entry.rcode)
                out[key] = out.get(key, 0) + entry.hits
        return out

    def counts(self, extra: list[dict] | None = None) -> dict[tuple[str, int, int], int]:
        """Answers sent so far by (zone, qtype, rcode), slow-path errors included."""
        live = self._live_counts(extra)  # first: it moves the bulk stores' counts into `retired`
        out = dict(self.retired)
        for key, n in live.items():
            out[key] = out.get(key, 0) + n
        for rcode, n in self.stats.by_rcode.items():
            out[("", 0, rcode)] = out.get(("", 0, rcode), 0) + n
        return out

    # -- the hot path -------------------------------------------------------------------------

    def answer(self, data: bytes, client: bytes, tcp: bool = False) -> bytes | None:  # noqa: C901 (one call per packet)
        """The response to one query, or None to send nothing (responses, garbage headers).

        `client` is the packed source address (4 or 16 octets): converted only when a GSLB name
        needs it, never for static answers.
        """
        try:
            if len(data) < 17 or data[2] & 0xF8:  # QR set or opcode != QUERY
                return self._slow(data, client, tcp)
            counts = data[4:12]
            if counts == _ONE_Q_NO_AR:
                has_opt = False
            elif counts == _ONE_Q_ONE_AR:
                has_opt = True
            else:
                return self._slow(data, client, tcp)
            pos = 12
            length = data[12]
            while length:
                if length > 63:
                    return self._slow(data, client, tcp)
                pos += length + 1
                length = data[pos]
            qend = pos + 5  # past root label, QTYPE and QCLASS
            if qend > len(data):
                return self._slow(data, client, tcp)
            key = data[12:pos + 1].lower() + data[pos + 1:qend]
            entry = self.table.get(key) or self.misses.get(key)
            if entry is None:
                qtype = data[pos + 1:pos + 3]
                if qtype in (_AXFR, _IXFR) or (tcp and qtype == _ANY):
                    return self._slow(data, client, tcp)
                entry = self._miss(key, has_opt and data[qend + 7] & 0x80 != 0)
            elif tcp and data[pos + 1:pos + 3] == _ANY:
                return self._slow(data, client, tcp)
            if not has_opt:
                if qend != len(data):
                    return self._slow(data, client, tcp)
                if entry.pick is not None:
                    entry, _scope = entry.pick(client, None)
                out = data[:2] + entry.hdr[(data[2] & 1) | ((data[3] >> 3) & 2)] + data[12:qend] + entry.tail
                entry.hits += 1
                if len(out) > 512 and not tcp:
                    self.stats.truncated += 1
                    out = data[:2] + entry.truncated().hdr[(data[2] & 1) | ((data[3] >> 3) & 2)] + data[12:qend]
                return out
            # Version-0 OPT with no options, or with one Client Subnet option: nearly all real
            # resolver traffic. Answered here; anything else takes the careful path below.
            if data[qend:qend + 3] == _OPT_ROOT and data[qend + 6] == 0:
                rdlen = (data[qend + 9] << 8) | data[qend + 10]
                end = qend + 11 + rdlen
                ecs: bytes | Literal[False] | None = None  # False: some other option (the careful path)
                if rdlen == 0:
                    option = b""
                elif data[qend + 11:qend + 13] == _ECS_CODE and rdlen == 4 + ((data[qend + 13] << 8)
                                                                              | data[qend + 14]):
                    ecs = data[qend + 15:end]
                    option = None
                else:
                    ecs = False
                if ecs is not False and end == len(data):
                    scope = 0
                    if data[qend + 7] & 0x80 and entry.signed is not None:  # DO: the signed twin
                        entry = entry.signed
                    if entry.pick is not None:
                        entry, scope = entry.pick(client, ecs)
                    elif ecs is not None and ecs not in self._valid_ecs:
                        wire.parse_ecs(ecs)  # FormErr on a bad option
                        if len(self._valid_ecs) > 100_000:
                            self._valid_ecs.clear()
                        self._valid_ecs.add(ecs)
                    if option is None:
                        # option is None only when ecs holds the option's bytes
                        option = b"\x00\x08" + data[qend + 13:qend + 15] + ecs[:3] + bytes((scope,)) + ecs[4:]  # type: ignore[index]
                    opt = (self._opt_head_do if data[qend + 7] & 0x80 else self._opt_head) + len(option).to_bytes(
                        2, "big") + option
                    rdcd = (data[2] & 1) | ((data[3] >> 3) & 2)
                    out = data[:2] + entry.hdr[4 + rdcd] + data[12:qend] + entry.tail + opt
                    entry.hits += 1
                    if len(out) > 512 and not tcp and len(out) > min(
                            max(512, (data[qend + 3] << 8) | data[qend + 4]), self.udp_size):
                        self.stats.truncated += 1
                        out = data[:2] + entry.truncated().hdr[4 + rdcd] + data[12:qend] + opt
                    return out
            edns, end = wire.parse_opt(data, qend)
            if end != len(data) or edns.version:
                return self._slow(data, client, tcp)
            return self._emit(data, qend, entry, edns, client, tcp)
        except (IndexError, wire.FormErr, struct.error, dns.exception.DNSException):
            return self._slow(data, client, tcp)

    def _miss(self, key: bytes, do: bool = False) -> Entry:
        """An answer the table did not foresee: from the template of the closest stop name
        (wildcard, GSLB wildcard, NXDOMAIN, referral, REFUSED), else compiled for this name
        (odd types at existing names, DNAME, GSLB wildcards with names in their values or in
        signed zones) into the bounded miss cache. A DO query below a
        signed zone's template gets an answer of its own, made from the template's layout
        (`_signed_from_template`), kept in the miss cache too."""
        bulk = self._bulk_zone(key) if self._bulk else None
        if bulk is not None:
            return self._bulk_entry(bulk, key)  # never a template: the store knows every name
        entry = self._from_template(key)
        if entry is not None and not (do and entry.signed is SIGNED_PER_NAME):
            return entry
        entry = (entry and self._signed_from_template(key)) or self._compile_miss(key)
        if self.engine is not None and key[-4:-2] not in (_AXFR, _IXFR):
            self.engine.insert(key, entry)  # the same answer every time: the next one is native
        return entry

    def _from_template(self, key: bytes) -> Entry | None:
        found = self._template_for(key)
        return found[2] if found is not None else None

    def _template_for(self, key: bytes) -> tuple[Template, int, Entry] | None:
        """Walk up from the query name to the first stop name K; answer from K's template (built
        on first use): (template, the query name's prefix length, the answer). The engine walks
        the same stop names (_engine.c `template_for`)."""
        if key[-4:-2] in (_AXFR, _IXFR):
            return None
        nend = len(key) - 4
        if nend < 2 or nend > 255:
            return None  # the root name itself; a name too long (FORMERR, on the careful path)
        stops = self._stops
        for _ in range(_WALKS):
            if key[:nend] in stops:
                return None  # a name of ours (or one an answer writes): compiled for itself
            pos = key[0] + 1
            while pos < nend - 1 and key[pos:nend] not in stops:
                pos += key[pos] + 1
            tkey = key[pos:]
            if tkey in self.templates:
                template = self.templates[tkey]
                if template is None:
                    return None
                if not template.pointers and template.make is None:
                    return template, pos, template.entry
                entry = template.by_plen.get(pos)
                if entry is None:
                    if self._relocated >= RELOCATED_MAX:
                        self._clear_templates()  # bounded whatever lengths arrive: start over
                        continue
                    self._relocated += 1
                    entry = template.entry_for(pos)
                    if entry is None:
                        return None  # a GSLB wildcard's that cannot be made for this length
                    if template.make is not None and self.engine is not None:
                        self.engine.insert_template_plen(tkey, pos, entry)
                return template, pos, entry
            self._add_template(tkey)  # may add stop names below K: walk again
        return None

    def _signed_from_template(self, key: bytes) -> Entry | None:
        """The DO answer for a name below a signed zone's template: its compact denial or wildcard
        proof laid out from the template's wire layout, one signature (gslb.dnssec.denial). The
        layout is learnt from the first such name's careful compile and checked on the next;
        None (compile it) where the layout does not fit."""
        found = self._template_for(key)
        if found is None:
            return None
        template, plen, unsigned = found
        layout = template.denial
        if layout is False:
            return None
        if layout is not None and layout.checked:
            signed = layout.signed_entry(key, plen)
            if signed is None:
                return None
            entry = unsigned.with_tail(unsigned.tail)  # this name's own pair
            entry.signed = signed
            self._keep(key, entry)
            return entry
        made = layout.signed_entry(key, plen) if layout is not None else None  # signed first: the compile reuses it
        entry = self._compile_miss(key)
        template.denial = denial.learn(self.snapshot.zones, key, plen, entry.signed, layout, made)
        return entry

    def _clear_templates(self) -> None:
        self._retire()  # their counts go to the running totals first
        self.templates = {}
        self._relocated = 0
        if self.engine is not None:
            self.engine.clear_templates()

    def _add_template(self, tkey: bytes) -> None:
        if len(self.templates) >= TEMPLATE_MAX:
            self._clear_templates()
        template = build_template(self.snapshot.zones, self.snapshot.compile, tkey[:-4],
                                  int.from_bytes(tkey[-4:-2], "big"), int.from_bytes(tkey[-2:], "big"),
                                  self._stops)
        self.templates[tkey] = template
        if template is not None:
            self._stops |= template.sensitive
            if self.engine is not None:
                self.engine.insert_template(tkey, template.entry, template.plen0, template.pointer_bytes(),
                                            list(template.sensitive), template.make is not None)

    def _compile_miss(self, key: bytes) -> Entry:
        qclass = key[-2:]
        qtype = int.from_bytes(key[-4:-2], "big")
        if qclass == CH:
            return REFUSED
        if qclass != IN:
            return REFUSED
        qname, _ = dns.name.from_wire(key, 0)
        if dns.rdatatype.is_metatype(cast(RdataType, qtype)) and qtype != RdataType.ANY:  # any int works
            return FORMERR if qtype == RdataType.OPT else NOTIMP
        ans = self.snapshot.zones.resolve(qname, qtype)
        if ans is None:
            return REFUSED
        entry = self.snapshot.compile(qname, qtype, ans)
        self._keep(key, entry)
        return entry

    def _keep(self, key: bytes, entry: Entry) -> None:
        """Into the bounded miss cache."""
        if len(self.misses) >= MISS_CACHE_MAX:
            self.misses = {}
            if self.engine is not None:
                self.engine.clear_misses()  # native copies of the dropped entries go too
        self.misses[key] = entry

    # -- everything unusual -------------------------------------------------------------------

    def _slow(self, data: bytes, client: bytes, tcp: bool) -> bytes | None:
        try:
            return self._careful(data, client, tcp)
        except Exception:  # never let one packet take the server down
            log.exception("unexpected error answering a %d-byte query from %s", len(data), client.hex())
            return self._error(data, wire.RCODE_SERVFAIL)

    def _error(self, data: bytes, rcode: int, question: bytes = b"", opt: bytes = b"") -> bytes | None:
        if len(data) < 12 or data[2] & 0x80:
            self.stats.dropped += 1
            return None  # too short to answer, or a response: never reply to those
        self.stats.by_rcode[rcode] = self.stats.by_rcode.get(rcode, 0) + 1
        if rcode == wire.RCODE_FORMERR:
            self.stats.formerr += 1
        opcode_rd = struct.unpack_from(">H", data, 2)[0] & 0x7910  # opcode, RD, CD kept
        hdr = struct.pack(">HHHHH", wire.QR | opcode_rd | rcode, 1 if question else 0, 0, 0, 1 if opt else 0)
        return data[:2] + hdr + question + opt

    def _careful(self, data: bytes, client: bytes, tcp: bool) -> bytes | None:
        if len(data) < 12:
            self.stats.dropped += 1
            return None
        flags, qdcount, ancount, nscount, arcount = struct.unpack_from(">HHHHH", data, 2)
        if flags & wire.QR:
            self.stats.dropped += 1
            return None
        opcode = (flags >> 11) & 0xF
        if qdcount != 1:
            return self._error(data, wire.RCODE_FORMERR if opcode == 0 else wire.RCODE_NOTIMP)
        try:
            qend = wire.question_end(data) + 4
            if qend > len(data):
                raise wire.FormErr("truncated question")
        except wire.FormErr:
            return self._error(data, wire.RCODE_FORMERR)
        question = data[12:qend]
        if opcode != 0:
            return self._not_a_query(data, qend, question, arcount and not ancount and not nscount)
        pos = _authority_end(data, qend, ancount, nscount)
        if pos is None:
            return self._error(data, wire.RCODE_FORMERR, question)
        edns, well_formed = _additional(data, pos, arcount)
        opt = b""
        if not well_formed:
            if edns is not None:
                opt = wire.opt_record(self.udp_size, edns.do)
            return self._error(data, wire.RCODE_FORMERR, question, opt)
        if edns is not None:
            opt = wire.opt_record(self.udp_size, edns.do)
            if edns.version != 0:
                return data[:2] + _BADVERS_HDR + question + wire.opt_record(self.udp_size, edns.do, ext_rcode=1)
        qtype = int.from_bytes(data[qend - 4:qend - 2], "big")
        qclass = int.from_bytes(data[qend - 2:qend], "big")
        if qclass != dns.rdataclass.IN and qclass != dns.rdataclass.CH:
            return self._error(data, wire.RCODE_REFUSED, question, opt)
        key = data[12:qend - 4].lower() + data[qend - 4:qend]
        if qclass == dns.rdataclass.IN and qtype in (RdataType.AXFR, RdataType.IXFR):
            return self._transfer(data, qend, key, edns, opt, client, tcp)
        if qclass == dns.rdataclass.IN and qtype == RdataType.ANY and tcp:
            qname, _ = dns.name.from_wire(key, 0)
            ans = self.snapshot.zones.resolve(qname, qtype, tcp=True)
            entry = REFUSED if ans is None else self.snapshot.compile(qname, qtype, ans)
        else:
            entry = self.table.get(key) or self.misses.get(key) or self._miss(key, edns is not None and edns.do)
        return self._emit(data, qend, entry, edns, client, tcp)

    def _not_a_query(self, data: bytes, qend: int, question: bytes, may_have_opt: bool) -> bytes | None:
        """NOTIMP for other opcodes: RD and CD copied (as BIND does), the OPT answered when the
        query has one."""
        opt = b""
        if may_have_opt and data[qend:qend + 3] == _OPT_ROOT:
            try:
                opt = wire.opt_record(self.udp_size, wire.parse_opt(data, qend)[0].do)
            except (wire.FormErr, IndexError):
                pass
        return self._error(data, wire.RCODE_NOTIMP, question, opt)

    def _transfer(self, data: bytes, qend: int, key: bytes, edns: wire.Edns | None, opt: bytes, client: bytes,
                  tcp: bool) -> bytes | None:
        """AXFR and IXFR are the TCP server's (see gslb.server.xfr); over UDP, AXFR is NOTIMP and
        IXFR gets the SOA so the client retries over TCP (RFC 1995)."""
        question = data[12:qend]
        if tcp:
            return None
        if key[-4:-2] == _AXFR:
            return self._error(data, wire.RCODE_NOTIMP, question, opt)
        entry = self._soa_entry(key)
        if entry is None:
            return self._error(data, wire.RCODE_REFUSED, question, opt)
        return self._emit(data, qend, entry, edns, client, tcp)

    def _soa_entry(self, key: bytes) -> Entry | None:
        qname, _ = dns.name.from_wire(key, 0)
        zone = self.snapshot.zones.by_origin.get(qname)
        if zone is None:
            return None
        return self.table.get(key[:-4] + RdataType.SOA.to_bytes(2, "big") + IN)

    def _emit(self, data: bytes, qend: int, entry: Entry, edns: wire.Edns | None, client: bytes,
              tcp: bool) -> bytes:
        rdcd = (data[2] & 1) | ((data[3] >> 3) & 2)
        if edns is None:
            if entry.pick is not None:
                entry, _ = entry.pick(client, None)
            entry.hits += 1
            out = data[:2] + entry.hdr[rdcd] + data[12:qend] + entry.tail
            if not tcp and len(out) > 512:
                self.stats.truncated += 1
                out = data[:2] + entry.truncated().hdr[rdcd] + data[12:qend]
            return out
        options = wire.nsid_option(self.identity) if edns.nsid else b""
        if edns.cookie is not None and self.cookies.enabled:
            status, cookie_option = self.cookies.respond(edns.cookie, client)
            options += cookie_option
            if status == _cookies.BAD and not tcp and self.cookies.badcookie:
                # RFC 7873 §5.2.3-4: a bad server cookie over UDP (we do no TSIG) gets BADCOOKIE with
                # a fresh cookie and no answer; the client retries with the new one
                self.cookies.badcookie_sent += 1
                opcode_rd = ((data[2] << 8) | data[3]) & 0x7910
                hdr = struct.pack(">HHHHH", wire.QR | opcode_rd | (_cookies.RCODE_BADCOOKIE & 0xF), 1, 0, 0, 1)
                return data[:2] + hdr + data[12:qend] + wire.opt_record(
                    self.udp_size, edns.do, options, ext_rcode=_cookies.RCODE_BADCOOKIE >> 4)
        scope = 0
        if edns.do and entry.signed is not None:
            entry = entry.signed
        if entry.pick is not None:
            entry, scope = entry.pick(client, edns.ecs.raw if edns.ecs is not None else None)
        if edns.ecs is not None:
            options += edns.ecs.option(scope)
        entry.hits += 1
        opt = wire.opt_record(self.udp_size, edns.do, options)
        out = data[:2] + entry.hdr[4 + rdcd] + data[12:qend] + entry.tail + opt
        if not tcp and len(out) > max(512, min(edns.payload, self.udp_size)):
            self.stats.truncated += 1
            out = data[:2] + entry.truncated().hdr[4 + rdcd] + data[12:qend] + opt
        return out



def _authority_end(data: bytes, qend: int, ancount: int, nscount: int) -> int | None:
    """Where the additional section starts, or None (FORMERR): only IXFR carries a record before
    it, the client's SOA in the authority section (RFC 1995)."""
    if not (ancount or nscount):
        return qend
    if ancount or nscount != 1 or data[qend - 4:qend] != _IXFR + IN:
        return None
    try:
        return _ixfr_soa_end(data, qend)
    except (wire.FormErr, IndexError, struct.error, dns.exception.DNSException):
        return None


def _additional(data: bytes, pos: int, arcount: int) -> tuple[wire.Edns | None, bool]:
    """The OPT record (if any) and whether the rest of the message is well formed: one OPT at
    most, nothing else (TSIG included: we do not sign, so say so rather than guess), no trailing
    bytes. The OPT is returned even when what follows it is bad, so FORMERR can carry one."""
    edns = None
    try:
        for _ in range(arcount):
            if pos < len(data) and data[pos] == 0 and data[pos + 1:pos + 3] == b"\x00\x29":
                if edns is not None:
                    return edns, False  # more than one OPT record
                edns, pos = wire.parse_opt(data, pos)
            else:
                return edns, False
        return edns, pos == len(data)
    except (wire.FormErr, IndexError):
        return edns, False


def _ixfr_soa_end(data: bytes, offset: int) -> int:
    """Validate the one authority record of an IXFR query at `offset`: an IN SOA owned by the
    queried zone (RFC 1995 section 3). Returns the offset after it; FormErr otherwise."""
    qname, _ = dns.name.from_wire(data, 12)
    owner, used = dns.name.from_wire(data, offset)
    pos = offset + used
    rtype, rclass, _ttl, rdlen = struct.unpack_from(">HHIH", data, pos)
    pos += 10
    end = pos + rdlen
    if rtype != RdataType.SOA or rclass != dns.rdataclass.IN or owner != qname or end > len(data):
        raise wire.FormErr("the authority section of an IXFR query holds the client's SOA of the zone, nothing else")
    for _ in range(2):  # MNAME, RNAME (compressed names allowed), then five 32-bit fields
        _name, used = dns.name.from_wire(data, pos)
        pos += used
    if pos + 20 != end:
        raise wire.FormErr("malformed SOA in the IXFR query")
    return end


__all__ = ["FORMERR", "NOTIMP", "REFUSED", "Responder", "Snapshot", "header_only"]
