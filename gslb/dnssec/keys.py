"""DNSSEC keys as BIND key files: `K<zone>+<alg>+<tag>.key` (the DNSKEY) and `.private`.

The files are the ones `dnssec-keygen -a ECDSAP256SHA256 -n ZONE` and `ldns-keygen` write, so
keys move freely between gslb and other signers. Only the algorithms we sign with are read:
13 (ECDSA P-256/SHA-256) and 15 (Ed25519). A `.private` file readable by group or others is
refused. The private key material is never logged or shown; `Key.__repr__` leaves it out.
"""

from __future__ import annotations

import base64
import calendar
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dns.dnssectypes import Algorithm
from dns.rdtypes.ANY.DNSKEY import DNSKEY

ALGORITHMS = {13: "ECDSAP256SHA256", 15: "ED25519"}
ALGORITHM_NAMES = {"13": 13, "15": 15, "ecdsap256sha256": 13, "ecdsa": 13, "ecdsa256": 13, "ed25519": 15}
ZONE_FLAGS = 256  # ZONE bit: a zone key (ZSK)
SEP_FLAGS = 257  # ZONE + SEP: a key signing key (KSK) or combined signing key (CSK)
REVOKE = 0x0080


class KeyError_(Exception):
    """A key file that cannot be used; the message names the file."""


@dataclass(eq=False)
class Key:
    zone: dns.name.Name
    algorithm: int
    flags: int
    dnskey: DNSKEY
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = field(repr=False)
    path: str = ""  # the .key file
    created: int = 0

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)

    @property
    def sep(self) -> bool:
        return bool(self.flags & 1)

    @property
    def basename(self) -> str:
        return key_basename(self.zone, self.algorithm, self.tag)

    def __repr__(self) -> str:  # never the private key
        return f"Key({self.basename}, flags={self.flags})"


def key_basename(zone: dns.name.Name, algorithm: int, tag: int) -> str:
    return f"K{zone.to_text().lower()}+{algorithm:03d}+{tag:05d}"


def parse_algorithm(text: str | int) -> int:
    alg = ALGORITHM_NAMES.get(str(text).strip().lower())
    if alg is None:
        raise ValueError(f"unsupported DNSSEC algorithm {text!r} (13/ECDSAP256SHA256 or 15/ED25519)")
    return alg


def generate(zone: dns.name.Name, algorithm: int = 13, sep: bool = True) -> Key:
    """A new key: flags 257 (KSK/CSK) when `sep`, else 256 (ZSK)."""
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == 13:
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == 15:
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported algorithm {algorithm}")
    flags = SEP_FLAGS if sep else ZONE_FLAGS
    dnskey = dns.dnssec.make_dnskey(private.public_key(), Algorithm(algorithm), flags=flags)
    return Key(zone, algorithm, flags, dnskey, private, created=int(time.time()))


def _private_bytes(key: Key) -> bytes:
    if isinstance(key.private, ec.EllipticCurvePrivateKey):
        return key.private.private_numbers().private_value.to_bytes(32, "big")
    if isinstance(key.private, ed25519.Ed25519PrivateKey):
        from cryptography.hazmat.primitives import serialization

        return key.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
    raise ValueError("no private key")


def _stamp(t: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def write(key: Key, directory: str) -> str:
    """Write `<dir>/K<zone>+<alg>+<tag>.key` and `.private` (mode 0600); returns the .key path."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    base = os.path.join(directory, key.basename)
    kind = "key-signing" if key.sep else "zone-signing"
    created = _stamp(key.created or int(time.time()))
    public = (f"; This is a {kind} key, keyid {key.tag}, for {key.zone.to_text()}\n"
              f"; Created: {created}\n"
              f"{key.zone.to_text()} IN DNSKEY {key.dnskey.to_text()}\n")
    secret = (f"Private-key-format: v1.3\n"
              f"Algorithm: {key.algorithm} ({ALGORITHMS[key.algorithm]})\n"
              f"PrivateKey: {base64.b64encode(_private_bytes(key)).decode()}\n"
              f"Created: {created}\nPublish: {created}\nActivate: {created}\n")
    fd = os.open(base + ".private", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    Path(base + ".key").write_text(public)
    key.path = base + ".key"
    return key.path


def _read_dnskey(path: str, zone: dns.name.Name | None) -> tuple[dns.name.Name, DNSKEY]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read: {exc.strerror}") from None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        # OWNER [TTL] [IN] DNSKEY FLAGS PROTO ALG KEY...
        try:
            i = [t.upper() for t in tokens].index("DNSKEY")
        except ValueError:
            continue
        owner = dns.name.from_text(tokens[0])
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, " ".join(tokens[i + 1:]))
        except Exception as exc:
            raise KeyError_(f"{path}: not a DNSKEY record: {exc}") from None
        if zone is not None and owner != zone:
            raise KeyError_(f"{path}: the key is for {owner}, not {zone}")
        return owner, cast(DNSKEY, rdata)  # from_text with rdtype DNSKEY gives a DNSKEY
    raise KeyError_(f"{path}: no DNSKEY record found")


def _check_mode(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(f"{path}: private key file is accessible by group/others "
                        f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing it: chmod 600 {path}")


def read(path: str, zone: dns.name.Name | None = None) -> Key:
    """Read one key from its `.key` path (the `.private` beside it)."""
    if path.endswith(".private"):
        path = path[:-len(".private")] + ".key"
    owner, dnskey = _read_dnskey(path, zone)
    private_path = path[:-len(".key")] + ".private"
    _check_mode(private_path)
    fields: dict[str, str] = {}
    try:
        for line in Path(private_path).read_text().splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
    except OSError as exc:
        raise KeyError_(f"{private_path}: cannot read: {exc.strerror}") from None
    try:
        algorithm = int(fields.get("algorithm", "0").split()[0])
    except ValueError:
        algorithm = 0
    if algorithm not in ALGORITHMS:
        raise KeyError_(f"{private_path}: algorithm {fields.get('algorithm')!r} is not supported (13 or 15)")
    if algorithm != dnskey.algorithm:
        raise KeyError_(f"{private_path}: algorithm {algorithm} does not match the .key file ({dnskey.algorithm})")
    try:
        raw = base64.b64decode(fields["privatekey"], validate=True)
        private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if algorithm == 13:
            private = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        else:
            private = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    except Exception:  # the message must not quote the key
        raise KeyError_(f"{private_path}: PrivateKey field missing or malformed") from None
    derived = dns.dnssec.make_dnskey(private.public_key(), Algorithm(algorithm), flags=dnskey.flags)
    if derived.key != dnskey.key:
        raise KeyError_(f"{private_path}: the private key does not match the public key in {path}")
    created = 0
    if "created" in fields:
        try:
            created = calendar.timegm(time.strptime(fields["created"], "%Y%m%d%H%M%S"))
        except ValueError:
            created = 0
    return Key(owner, algorithm, dnskey.flags, dnskey, private, path=path, created=created)


def find(directory: str, zone: dns.name.Name) -> list[str]:
    """The .key files of `zone` in `directory` (sorted)."""
    prefix = f"k{zone.to_text().lower()}+"
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.lower().startswith(prefix) and n.endswith(".key"))


def load_all(directory: str, zone: dns.name.Name) -> list[Key]:
    """Every key of `zone` in `directory`; KeyError_ naming the file when one is unusable."""
    return [read(p, zone) for p in find(directory, zone)]


def ds(key: Key, digest: str = "SHA256") -> dns.rdata.Rdata:
    return dns.dnssec.make_ds(key.zone, key.dnskey, digest)
