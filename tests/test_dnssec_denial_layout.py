"""DO answers for never-seen names below a signed zone's template are laid out as wire bytes
(gslb/dnssec/denial.py): one NSEC signature, no compile. They must be the bytes the careful
path (every name compiled and signed for itself, as before layouts) sends, and validate.

Both sides answer the same query; before the careful side answers, every signer forgets its NSEC
signatures, so the careful side signs again itself (rrsig() over dnspython's records): the two
signatures are made independently, and deterministic ECDSA/Ed25519 makes them equal or the test
fails. Names: compact-denial NXDOMAIN, NODATA through a wildcard, wildcard expansions one and
more labels deep, mixed case, literal `*` labels, 63-octet labels and names too long for
`\\000.qname` (laid out or not, the bytes must agree), under a CSK (alg 13) and a KSK+ZSK
(alg 15) zone, with the native engine, in pure Python, and without DO.
"""

from __future__ import annotations

import random
import shutil
import struct
import tempfile
from collections.abc import Iterator

import dns.message
import dns.name
import dns.rcode
import pytest
from dns.rdatatype import RdataType

from gslb.answers import Answers
from gslb.dnssec import denial, serve
from gslb.server import native
from gslb.server.fastpath import Responder
from gslb.server.table import Entry
from tests.test_dnssec import signed_zones, validate_all

ORIGIN = dns.name.from_text("example.com.")
GSLB = dns.name.from_text("gslb.example.com.")
CLIENT = b"\xc0\x00\x02\x01"
SERIAL = 2026120201


class Careful(Responder):
    """Every name not in the table compiled (and signed) for itself."""

    def _from_template(self, key: bytes) -> Entry | None:
        return None


@pytest.fixture(scope="module")
def sides() -> Iterator[tuple[Responder, Responder, Responder | None]]:
    """(templated Python, careful Python, templated through the native engine or None)."""
    workdir = tempfile.mkdtemp(prefix="gslb-denial-")
    try:
        zones = signed_zones(workdir, SERIAL)
        out: list[Responder] = []
        for cls in (Responder, Careful, Responder):
            responder = cls(Answers(zones).snapshot, "test", None)
            out.append(responder)
        out[0].engine = out[1].engine = None
        if out[2].engine is None:
            yield out[0], out[1], None
        else:
            yield out[0], out[1], out[2]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def query(name: str, qtype: int, do: bool = True, qid: int = 0x4242) -> bytes:
    wire = b"".join(bytes((len(label),)) + label.encode("latin-1") for label in name.rstrip(".").split(".")) + b"\0"
    return (struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1) + wire + struct.pack(">HH", qtype, 1)
            + struct.pack(">BHHBBHH", 0, 41, 4096, 0, 0, 0x8000 if do else 0, 0))


def forget_denials() -> None:
    for signer in serve.signers().values():
        signer.denials.clear()
        signer._keys.clear()


def random_label(rnd: random.Random, size: int | None = None) -> str:
    size = size or rnd.randint(1, 20)
    return "".join(rnd.choice("abcxyzABCXYZ0189-_") for _ in range(size))


def names(rnd: random.Random) -> Iterator[tuple[str, int]]:
    """(name, qtype): what a random-subdomain flood and odd corners send."""
    for _ in range(150):
        yield f"{random_label(rnd)}.example.com", rnd.choice([1, 1, 28, 16, 15, 33, 99])  # NXDOMAIN
        yield f"{random_label(rnd)}.apps.example.com", rnd.choice([1, 1, 1, 28, 16])  # wildcard: answer, NODATA
        yield f"{random_label(rnd)}.{random_label(rnd)}.apps.example.com", 1  # deeper: the next closer name
        yield f"{random_label(rnd)}.{random_label(rnd)}.example.com", 1
        yield f"{random_label(rnd)}.gslb.example.com", rnd.choice([1, 28])  # KSK+ZSK, alg 15
    for size in (62, 63):  # no subtree end for a 63-octet label; a predecessor as long as allowed
        yield f"{random_label(rnd, size)}.apps.example.com", 1
        yield f"{random_label(rnd, size)}.example.com", 1
    yield "*.nothere.example.com", 1  # a literal `*` label owns the NSEC: one label less in its RRSIG
    yield "*.apps.example.com", 28
    long = ".".join(random_label(rnd, 60) for _ in range(4))[:236].strip(".-")  # names near 255 octets
    for extra in range(0, 16):
        yield f"{long[:220 + extra].strip('.')}.example.com", 1
        yield f"{long[:220 + extra].strip('.')}.apps.example.com", 1


def test_laid_out_denials_are_the_careful_bytes_and_validate(sides) -> None:
    templated, careful, engine_side = sides
    keys = {origin: s.apex_rrsets()[0] for origin, s in serve.signers().items()}
    rnd = random.Random(13)
    checked = 0
    for i, (name, qtype) in enumerate(names(rnd)):
        packet = query(name, qtype, qid=i)
        got = templated.answer(packet, CLIENT)
        native_got = engine_side.engine.answer_one(packet, CLIENT, engine_side) if engine_side else got
        forget_denials()  # the careful side signs for itself
        want = careful.answer(packet, CLIENT)
        assert got == want, (name, qtype)
        assert native_got == want, (name, qtype)
        if i % 7 == 0:  # validation is slow in dnspython: a sample of every kind
            resp = dns.message.from_wire(got)
            assert resp.rcode() == dns.rcode.NOERROR
            assert validate_all(resp, keys) == []
            checked += 1
        plain = query(name, qtype, do=False, qid=i)  # without DO: the unsigned answer, no NSEC
        assert templated.answer(plain, CLIENT) == careful.answer(plain, CLIENT)
    assert checked > 50
    layouts = [t.denial for t in templated.templates.values() if t is not None and t.denial]
    kinds = {layout.kind for layout in layouts if layout.checked}
    assert kinds == {denial.NEGATIVE, denial.WILDCARD}  # the layouts answered, not per-name compiles


def test_a_new_name_costs_one_signature_and_a_repeat_none(sides) -> None:
    templated, _careful, _engine_side = sides
    for warm in ("warm1.example.com", "warm2.example.com", "warm1.apps.example.com", "warm2.apps.example.com"):
        templated.answer(query(warm, 1), CLIENT)  # the layouts learnt and checked
    before = serve.signatures()
    for i in range(20):
        templated.answer(query(f"fresh{i}.example.com", 1), CLIENT)
        templated.answer(query(f"fresh{i}.apps.example.com", 1), CLIENT)
    assert serve.signatures() - before == 40
    for i in range(20):
        templated.answer(query(f"fresh{i}.example.com", 1), CLIENT)  # from the miss cache
        templated.answer(query(f"fresh{i}.example.com", 28), CLIENT)  # the same NSEC: its signature reused
    assert serve.signatures() - before == 40


@pytest.mark.skipif(native._engine is None, reason="the native engine (_engine.c) was not built")
def test_signed_zone_templates_answer_plain_queries_natively(sides) -> None:
    """Without DO a signed zone's random names are the template's (native); with DO, the first
    query of a name is Python's, its repeat native from the miss cache."""
    _templated, careful, engine_side = sides
    assert engine_side is not None
    engine = engine_side.engine

    def native(packet: bytes) -> tuple[bytes, bool]:
        before = engine.stats()["native"]
        out = engine.answer_one(packet, CLIENT, engine_side)
        return out, engine.stats()["native"] == before + 1

    rnd = random.Random(5)
    for i in range(30):
        name = f"{random_label(rnd)}.{'apps.' if i % 2 else ''}example.com"
        plain = query(name, 1, do=False)
        native(plain)  # may build the template in Python
        assert native(plain) == (careful.answer(plain, CLIENT), True)
        signed = query(name, 1)
        first, was_native = native(signed)
        assert not was_native  # made in Python (the layout), then kept in the miss cache
        assert native(signed) == (first, True)
        assert any(r.rdtype == RdataType.NSEC for r in dns.message.from_wire(first).authority)


def test_an_odd_first_name_does_not_turn_the_layouts_off(sides) -> None:
    """A name the careful path treats apart (a 63-octet next closer label, a name too long for
    `\\000.name`) asked first teaches nothing; the next names still get laid out."""
    templated, careful, _engine_side = sides
    templated.swap(templated.snapshot)  # no templates, no layouts
    rnd = random.Random(21)
    longest = ".".join(random_label(rnd, n) for n in (60, 60, 60, 57)) + ".example.com"  # 254 octets
    assert len(dns.name.from_text(longest).to_wire()) == 254
    odd = [f"{random_label(rnd, 63)}.apps.example.com", longest]
    for name in odd + [f"{random_label(rnd)}.apps.example.com" for _ in range(3)] + [
            f"{random_label(rnd)}.example.com" for _ in range(3)]:
        packet = query(name, 1)
        got = templated.answer(packet, CLIENT)
        forget_denials()
        assert got == careful.answer(packet, CLIENT), name
    kinds = {t.denial.kind for t in templated.templates.values() if t is not None and t.denial and t.denial.checked}
    assert kinds == {denial.NEGATIVE, denial.WILDCARD}
