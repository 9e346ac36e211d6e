"""octoDNS record values → DNS rdata (dnspython), one small converter per record type.

Each converter turns one octoDNS value (a string or a mapping, as octoDNS's YamlProvider
documents it) into presentation text that dnspython parses; dnspython then does the wire-level
validation. Converters raise `ValueProblem` naming the sub-field at fault.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from typing import Any

import dns.exception
import dns.ipv6
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
from dns.rdata import Rdata

_BARE_SEMICOLON = re.compile(r"(?<!\\);")


class ValueProblem(ValueError):
    """A value is wrong; `field` is the sub-key (e.g. `exchange`) or '' for the value itself."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _need(value: Any, *keys: str) -> list[Any]:
    if not isinstance(value, Mapping):
        raise ValueProblem(f"expected a mapping with {', '.join(keys)}, got {value!r}")
    missing = [k for k in keys if k not in value or value[k] is None or value[k] == ""]
    if missing:
        raise ValueProblem(f"missing {', '.join(missing)}", missing[0])
    return [value[k] for k in keys]


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueProblem(f"{field} must be an integer {lo}..{hi}, got {value!r}", field)
    try:
        number = int(value)
    except ValueError:
        raise ValueProblem(f"{field} must be an integer {lo}..{hi}, got {value!r}", field) from None
    if not lo <= number <= hi:
        raise ValueProblem(f"{field} {number} out of range {lo}..{hi}", field)
    return number


def _fqdn(value: Any, field: str = "") -> str:
    """octoDNS requires absolute names (trailing dot) wherever a record points at a name."""
    if not isinstance(value, str) or not value:
        raise ValueProblem(f"expected a fully qualified name, got {value!r}", field)
    if value != "." and not value.endswith("."):
        raise ValueProblem(f"{value!r} is missing the trailing dot", field)
    try:
        dns.name.from_text(value)
    except dns.exception.DNSException as exc:
        raise ValueProblem(f"bad name {value!r}: {exc}", field) from None
    return value


def _address(version: int) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        try:
            ip = ipaddress.ip_address(str(value))
        except ValueError:
            raise ValueProblem(f"{value!r} is not an IPv{version} address") from None
        if ip.version != version:
            raise ValueProblem(f"{value!r} is not an IPv{version} address")
        return str(ip)

    return convert


def txt_strings(value: Any) -> list[bytes]:
    """octoDNS TXT text → character-strings: `\\;` unescaped, split at 255 octets."""
    if not isinstance(value, str):
        raise ValueProblem(f"TXT value must be a string (quote it in YAML), got {type(value).__name__} {value!r}")
    if value == "":
        raise ValueProblem("TXT value is empty")
    if value[0] == '"' and value[-1:] == '"' and len(value) > 1:
        value = value[1:-1].replace('" "', "")
    if _BARE_SEMICOLON.search(value):
        raise ValueProblem("unescaped ';' (octoDNS requires '\\;' in TXT values)")
    raw = value.replace("\\;", ";").encode()
    return [raw[i:i + 255] for i in range(0, len(raw), 255)]


def _quoted(value: Any, _field: str) -> str:
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mx(v: Any) -> str:
    if isinstance(v, Mapping) and "exchange" not in v and "value" in v:  # octoDNS legacy spelling
        v = {"preference": v.get("priority", v.get("preference")), "exchange": v["value"]}
    pref, exchange = _need(v, "preference", "exchange")
    return f"{_int(pref, 'preference', 0, 65535)} {_fqdn(exchange, 'exchange')}"


def _srv(v: Any) -> str:
    prio, weight, port, target = _need(v, "priority", "weight", "port", "target")
    return (f"{_int(prio, 'priority', 0, 65535)} {_int(weight, 'weight', 0, 65535)} "
            f"{_int(port, 'port', 0, 65535)} {_fqdn(target, 'target')}")


def _caa(v: Any) -> str:
    tag, value = _need(v, "tag", "value")
    flags = _int(v.get("flags", 0), "flags", 0, 255)
    if tag not in ("issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone"):
        raise ValueProblem(f"unknown CAA tag {tag!r}", "tag")
    return f"{flags} {tag} {_quoted(value, 'value')}"


def _sshfp(v: Any) -> str:
    alg, fptype, fp = _need(v, "algorithm", "fingerprint_type", "fingerprint")
    return f"{_int(alg, 'algorithm', 0, 255)} {_int(fptype, 'fingerprint_type', 0, 255)} {fp}"


def _naptr(v: Any) -> str:
    order, pref, flags, service, regexp, repl = (v.get(k, "") if isinstance(v, Mapping) else None for k in (
        "order", "preference", "flags", "service", "regexp", "replacement"))
    _need(v, "order", "preference", "replacement")
    return (f"{_int(order, 'order', 0, 65535)} {_int(pref, 'preference', 0, 65535)} "
            f"{_quoted(flags, 'flags')} {_quoted(service, 'service')} {_quoted(regexp, 'regexp')} "
            f"{_fqdn(repl, 'replacement')}")


_LOC_KEYS = ("lat_degrees", "lat_minutes", "lat_seconds", "lat_direction", "long_degrees", "long_minutes",
             "long_seconds", "long_direction", "altitude", "size", "precision_horz", "precision_vert")


def _loc(v: Any) -> str:
    if not isinstance(v, Mapping):
        raise ValueProblem("LOC value must be a mapping")
    missing = [k for k in _LOC_KEYS if k not in v]
    if missing:
        raise ValueProblem(f"missing {', '.join(missing)}", missing[0])
    if v["lat_direction"] not in ("N", "S"):
        raise ValueProblem("lat_direction must be N or S", "lat_direction")
    if v["long_direction"] not in ("E", "W"):
        raise ValueProblem("long_direction must be E or W", "long_direction")
    _int(v["lat_degrees"], "lat_degrees", 0, 90)
    _int(v["long_degrees"], "long_degrees", 0, 180)
    return " ".join(f"{v[k]}m" if k in ("altitude", "size", "precision_horz", "precision_vert") else str(v[k])
                    for k in _LOC_KEYS)


def _ds(v: Any) -> str:
    if isinstance(v, Mapping) and "key_tag" not in v and "flags" in v:  # octoDNS legacy spelling
        v = {"key_tag": v["flags"], "algorithm": v.get("protocol"), "digest_type": v.get("algorithm"),
             "digest": v.get("public_key")}
    tag, alg, dtype, digest = _need(v, "key_tag", "algorithm", "digest_type", "digest")
    return (f"{_int(tag, 'key_tag', 0, 65535)} {_int(alg, 'algorithm', 0, 255)} "
            f"{_int(dtype, 'digest_type', 0, 255)} {digest}")


def _tlsa(v: Any) -> str:
    usage, sel, mtype, data = _need(v, "certificate_usage", "selector", "matching_type",
                                    "certificate_association_data")
    return (f"{_int(usage, 'certificate_usage', 0, 255)} {_int(sel, 'selector', 0, 255)} "
            f"{_int(mtype, 'matching_type', 0, 255)} {data}")


def _uri(v: Any) -> str:
    prio, weight, target = _need(v, "priority", "weight", "target")
    return f"{_int(prio, 'priority', 0, 65535)} {_int(weight, 'weight', 0, 65535)} {_quoted(target, 'target')}"


def _svcb(v: Any) -> str:
    prio, target = _need(v, "svcpriority", "targetname")
    prio = _int(prio, "svcpriority", 0, 65535)
    text = f"{prio} {_fqdn(target, 'targetname')}"
    params = v.get("svcparams") or {}
    if not isinstance(params, Mapping):
        raise ValueProblem("svcparams must be a mapping", "svcparams")
    for key, val in params.items():
        if val is None or val == "":
            text += f" {key}"
        elif isinstance(val, list):
            text += f" {key}={','.join(str(x) for x in val)}"
        else:
            text += f" {key}={val}"
    return text


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueProblem(f"expected a string, got {v!r}")
    return v


# type → (converter of one value to presentation text, values allowed to be several)
CONVERTERS: dict[str, tuple[Callable[[Any], str], bool]] = {
    "A": (_address(4), True),
    "AAAA": (_address(6), True),
    "CNAME": (_fqdn, False),
    "DNAME": (_fqdn, False),
    "ALIAS": (_fqdn, False),
    "NS": (_fqdn, True),
    "PTR": (_fqdn, True),
    "MX": (_mx, True),
    "SRV": (_srv, True),
    "CAA": (_caa, True),
    "SSHFP": (_sshfp, True),
    "NAPTR": (_naptr, True),
    "LOC": (_loc, True),
    "DS": (_ds, True),
    "TLSA": (_tlsa, True),
    "URI": (_uri, True),
    "SVCB": (_svcb, True),
    "HTTPS": (_svcb, True),
    "OPENPGPKEY": (_text, True),
    "TXT": (_text, True),
    "SPF": (_text, True),
}


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
_PLAIN_FQDN = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)+")
_NAMES: dict[str, dns.name.Name] = {}  # absolute names rdata point at (CNAME, MX targets ...): few, repeated
_NAMES_MAX = 50_000
_IN = dns.rdataclass.IN
_RDTYPES = {t: dns.rdatatype.CNAME if t == "ALIAS" else dns.rdatatype.from_text(t) for t in CONVERTERS}


def _plain_name(value: Any) -> dns.name.Name | None:
    """An absolute name written plainly (letters, digits, '-', '_'), without the text parser."""
    if type(value) is not str:
        return None
    name = _NAMES.get(value)
    if name is None:
        if len(value) > 254 or not _PLAIN_FQDN.fullmatch(value):
            return None
        name = dns.name.Name((*value[:-1].encode().split(b"."), b""))
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[value] = name
    return name


_set = object.__setattr__


def _bare(cls: type, rdtype: dns.rdatatype.RdataType, field: str, value: Any) -> Rdata:
    """An rdata of one field made without dnspython's constructor, for values already checked
    here: the constructor's immutability guard and re-validation cost about ten times the rest
    of parsing a simple record. The object is the same (slots, equality, wire form)."""
    rdata: Rdata = object.__new__(cls)
    _set(rdata, "rdclass", _IN)
    _set(rdata, "rdtype", rdtype)
    _set(rdata, "rdcomment", None)
    _set(rdata, field, value)
    return rdata


_A_CLASS = dns.rdtypes.IN.A.A
_A_TYPE = dns.rdatatype.A


def _fast_a(value: Any) -> Rdata | None:
    if type(value) is str and _IPV4.fullmatch(value):  # dotted quad, no leading zeros: dnspython's text
        return _bare(_A_CLASS, _A_TYPE, "address", value)
    return None


_HEX_V6 = re.compile(r"[0-9A-Fa-f:]{2,39}")
_AAAA_CLASS = dns.rdtypes.IN.AAAA.AAAA
_AAAA_TYPE = dns.rdatatype.AAAA


def aaaa_text(packed: bytes) -> str:
    """dnspython's text of an IPv6 address (`dns.ipv6.inet_ntoa`), from libc where they agree:
    both write RFC 5952's form (lower case, the first longest run of two or more zero groups
    as `::`); dnspython's own code for the forms with an IPv4 part."""
    text = socket.inet_ntop(socket.AF_INET6, packed)
    return dns.ipv6.inet_ntoa(packed) if "." in text else text


def _fast_aaaa(value: Any) -> Rdata | None:
    """Hex groups only (no embedded IPv4, no scope): the address as dnspython would store it
    (its own canonical text of the 16 octets), without ipaddress and the constructor."""
    if type(value) is str and _HEX_V6.fullmatch(value):
        try:
            packed = socket.inet_pton(socket.AF_INET6, value)
        except OSError:
            return None
        return _bare(_AAAA_CLASS, _AAAA_TYPE, "address", aaaa_text(packed))
    return None


def _fast_target(cls: type, rdtype: dns.rdatatype.RdataType) -> Callable[[Any], Rdata | None]:
    def convert(value: Any) -> Rdata | None:
        name = _plain_name(value)
        return _bare(cls, rdtype, "target", name) if name is not None else None

    return convert


def _fast_mx(value: Any) -> Rdata | None:
    if isinstance(value, Mapping) and len(value) == 2:
        pref, exchange = value.get("preference"), value.get("exchange")
        if type(pref) is int and 0 <= pref <= 65535:
            name = _plain_name(exchange)
            if name is not None:
                return dns.rdtypes.ANY.MX.MX(_IN, dns.rdatatype.MX, pref, name)
    return None


# Direct construction for the common cases; None means "take the general path" (which also
# words every problem), so these never decide that a value is wrong.
FAST: dict[str, Callable[[Any], Rdata | None]] = {
    "A": _fast_a,
    "AAAA": _fast_aaaa,
    "CNAME": _fast_target(dns.rdtypes.ANY.CNAME.CNAME, dns.rdatatype.CNAME),
    "ALIAS": _fast_target(dns.rdtypes.ANY.CNAME.CNAME, dns.rdatatype.CNAME),
    "NS": _fast_target(dns.rdtypes.ANY.NS.NS, dns.rdatatype.NS),
    "PTR": _fast_target(dns.rdtypes.ANY.PTR.PTR, dns.rdatatype.PTR),
    "MX": _fast_mx,
}


def to_rdata(rtype: str, value: Any, origin: dns.name.Name) -> Rdata:
    """One octoDNS value → one dnspython rdata. ALIAS is returned as a CNAME-shaped rdata."""
    fast = FAST.get(rtype)
    if fast is not None:
        rdata = fast(value)
        if rdata is not None:
            return rdata
    converter, _ = CONVERTERS[rtype]
    if rtype in ("TXT", "SPF"):
        strings = txt_strings(value)
        return dns.rdtypes.ANY.TXT.TXT(_IN, _RDTYPES[rtype], strings)
    text = converter(value)
    rdtype = _RDTYPES[rtype]
    try:
        return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=origin, relativize=False)
    except dns.exception.DNSException as exc:
        raise ValueProblem(f"bad {rtype} value {text!r}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ValueProblem(f"bad {rtype} value {text!r}: {exc}") from None
