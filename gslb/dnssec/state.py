"""Key states and rollovers, kept in a small JSON file next to the keys (`<zone>.dnssec-state.json`).

A key is `published` (in the DNSKEY RRset, signing nothing), `active` (published and signing),
`retired` (published, no longer signing: its signatures may still sit in caches) or `removed`
(gone from the DNSKEY RRset; the files stay for the record). Keys found in the folder that the
state file does not know (made by `dnssec-keygen`, say) are active: a SEP key (flags 257) is a
CSK when the zone has no ZSK, else a KSK.

Rollovers are the two of RFC 6781 section 4.1 that never show a validating resolver with cached
DNSKEYs a signature it cannot check:
- ZSK pre-publication: publish the new ZSK; after DNSKEY TTL + propagation, sign with it and
  retire the old one; after the zone's largest TTL + propagation, remove the old one.
- CSK (and KSK) double signature: the new key signs alongside the old one; after
  max(DNSKEY TTL, largest TTL) + propagation, the parent's DS can change to the new key (CDS and
  `gslb dnssec ds` show it); once the operator confirms the parent serves the new DS
  (`rollover --ds-published`), wait the parent's DS TTL + propagation, then remove the old key.
Each step runs only when its time has come (`gslb dnssec rollover ZONE` again); `status` says
what is next and when.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import dns.name

from gslb.dnssec import keys as keyfiles

STATES = ("published", "active", "retired", "removed")


def state_path(directory: str, zone: dns.name.Name) -> str:
    return os.path.join(directory, f"{zone.to_text(omit_final_dot=True).lower() or '.'}.dnssec-state.json")


@dataclass
class KeyState:
    role: str  # csk | ksk | zsk
    state: str  # published | active | retired | removed
    since: int = 0


@dataclass
class ZoneKeys:
    """A zone's keys with their roles and states, and the rollover in progress (if any)."""

    zone: dns.name.Name
    directory: str
    keys: list[keyfiles.Key] = field(default_factory=list)
    states: dict[str, KeyState] = field(default_factory=dict)  # by key basename
    rollover: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)  # a broken state, in words

    # -- reading and writing ----------------------------------------------------------------

    @classmethod
    def load(cls, directory: str, zone: dns.name.Name) -> ZoneKeys:
        """Keys and states; raises keys.KeyError_ (naming the file) when a key cannot be used."""
        out = cls(zone, directory, keyfiles.load_all(directory, zone))
        path = state_path(directory, zone)
        doc: dict[str, Any] = {}
        if os.path.exists(path):
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError) as exc:
                raise keyfiles.KeyError_(f"{path}: unreadable DNSSEC state file: {exc}") from None
        known = doc.get("keys", {}) if isinstance(doc, dict) else {}
        has_zsk = any(not k.sep for k in out.keys)
        for key in out.keys:
            entry = known.get(key.basename)
            if isinstance(entry, dict) and entry.get("state") in STATES:
                out.states[key.basename] = KeyState(str(entry.get("role", "csk")), entry["state"],
                                                    int(entry.get("since", 0)))
            else:
                role = ("ksk" if has_zsk else "csk") if key.sep else "zsk"
                out.states[key.basename] = KeyState(role, "active", key.created)
        for name in known:
            if name not in out.states and known[name].get("state") != "removed":
                out.problems.append(f"{path}: key {name} is in the state file but its files are missing")
        out.rollover = doc.get("rollover") if isinstance(doc, dict) else None
        if out.rollover is not None:
            for side in ("old", "new"):
                if out.rollover.get(side) not in out.states:
                    out.problems.append(f"{path}: rollover {side} key {out.rollover.get(side)} has no key files")
        return out

    def save(self) -> None:
        path = state_path(self.directory, self.zone)
        doc = {"zone": self.zone.to_text(), "keys": {n: s.__dict__ for n, s in sorted(self.states.items())},
               "rollover": self.rollover}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)

    # -- what the signer uses ---------------------------------------------------------------

    def state_of(self, key: keyfiles.Key) -> KeyState:
        return self.states[key.basename]

    def published(self) -> list[keyfiles.Key]:
        return [k for k in self.keys if self.state_of(k).state in ("published", "active", "retired")]

    def signing(self, dnskey_rrset: bool) -> list[keyfiles.Key]:
        """Active keys that sign the DNSKEY RRset (KSK, CSK) or everything else (ZSK, CSK)."""
        roles = ("csk", "ksk") if dnskey_rrset else ("csk", "zsk")
        return [k for k in self.keys if self.state_of(k).state == "active" and self.state_of(k).role in roles]

    def sep_active(self) -> list[keyfiles.Key]:
        """The keys the parent's DS should point at (CDS/CDNSKEY, `gslb dnssec ds`)."""
        leaving = self.rollover["old"] if self.rollover and self.rollover.get("step") == "ds-wait" else None
        return [k for k in self.keys if self.state_of(k).state == "active" and self.state_of(k).role in ("csk", "ksk")
                and k.basename != leaving]

    def fingerprint(self) -> tuple:
        return tuple(sorted((k.basename, self.state_of(k).role, self.state_of(k).state) for k in self.keys))

    def check(self) -> list[str]:
        """Problems that would break validation: nothing signs, a broken state file."""
        out = list(self.problems)
        if not self.keys:
            out.append(f"{self.directory}: no keys for {self.zone} (gslb dnssec keygen {self.zone})")
            return out
        if not self.signing(True):
            out.append(f"{self.zone}: no active KSK/CSK signs the DNSKEY RRset")
        if not self.signing(False):
            out.append(f"{self.zone}: no active ZSK/CSK signs the zone")
        return out

    # -- adding keys ----------------------------------------------------------------------

    def add(self, key: keyfiles.Key, role: str, state: str, now: int) -> None:
        keyfiles.write(key, self.directory)
        self.keys.append(key)
        self.states[key.basename] = KeyState(role, state, now)

    def set_state(self, name: str, state: str, now: int) -> None:
        self.states[name].state = state
        self.states[name].since = now


def keygen(directory: str, zone: dns.name.Name, algorithm: int = 13, split: bool = False,
           now: int | None = None) -> list[keyfiles.Key]:
    """New keys for a zone with none: one CSK, or a KSK and a ZSK."""
    now = int(time.time()) if now is None else now
    zk = ZoneKeys.load(directory, zone)
    made = []
    if split:
        for role, sep in (("ksk", True), ("zsk", False)):
            key = keyfiles.generate(zone, algorithm, sep=sep)
            zk.add(key, role, "active", now)
            made.append(key)
    else:
        key = keyfiles.generate(zone, algorithm, sep=True)
        zk.add(key, "csk", "active", now)
        made.append(key)
    zk.save()
    return made


@dataclass
class Timing:
    dnskey_ttl: int = 3600
    max_zone_ttl: int = 86400
    propagation: int = 300
    parent_ds_ttl: int = 86400


def _when(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def next_action(zk: ZoneKeys, now: int | None = None) -> str:
    """The next rollover step in words, with the time it may run."""
    now = int(time.time()) if now is None else now
    ro = zk.rollover
    if ro is None:
        return "none (no rollover in progress; `gslb dnssec rollover ZONE` starts one)"
    step, due = ro["step"], int(ro["not_before"])
    wait = "now" if due <= now else f"at {_when(due)} (in {due - now}s)"
    if step == "publish":
        return f"ZSK rollover: activate {ro['new']} and retire {ro['old']}: `gslb dnssec rollover` {wait}"
    if step == "retire":
        return f"ZSK rollover: remove {ro['old']}: `gslb dnssec rollover` {wait}"
    if step == "submit-ds":
        return (f"{ro['kind'].upper()} rollover: {wait}, replace the parent's DS with the new key's "
                f"(`gslb dnssec ds`), then `gslb dnssec rollover --ds-published`")
    if step == "ds-wait":
        return f"{ro['kind'].upper()} rollover: remove {ro['old']}: `gslb dnssec rollover` {wait}"
    return f"unknown rollover step {step!r}"


class RolloverError(Exception):
    pass


def rollover(zk: ZoneKeys, timing: Timing, kind: str | None = None, ds_published: bool = False,
             force: bool = False, now: int | None = None) -> str:
    """Start the rollover or run its next step when due; saves the state; returns what was done."""
    now = int(time.time()) if now is None else now
    ro = zk.rollover
    if ro is None:
        roles = {zk.state_of(k).role for k in zk.keys if zk.state_of(k).state == "active"}
        if kind is None:
            kind = "csk" if "csk" in roles else "zsk"
        if kind not in roles:
            raise RolloverError(f"{zk.zone}: no active {kind.upper()} to roll")
        old = next(k for k in zk.keys if zk.state_of(k).state == "active" and zk.state_of(k).role == kind)
        new = keyfiles.generate(zk.zone, old.algorithm, sep=kind != "zsk")
        if kind == "zsk":
            zk.add(new, kind, "published", now)
            due = now + timing.dnskey_ttl + timing.propagation
            zk.rollover = {"kind": kind, "old": old.basename, "new": new.basename, "step": "publish",
                           "not_before": due, "started": now}
            done = f"published new ZSK {new.basename} (not signing yet)"
        else:
            zk.add(new, kind, "active", now)
            due = now + max(timing.dnskey_ttl, timing.max_zone_ttl) + timing.propagation
            zk.rollover = {"kind": kind, "old": old.basename, "new": new.basename, "step": "submit-ds",
                           "not_before": due, "started": now}
            done = f"new {kind.upper()} {new.basename} published and signing beside {old.basename}"
        zk.save()
        return done
    step, due = ro["step"], int(ro["not_before"])
    if due > now and not force:
        raise RolloverError(f"{zk.zone}: too early: {next_action(zk, now)}")
    if step == "publish":
        zk.set_state(ro["new"], "active", now)
        zk.set_state(ro["old"], "retired", now)
        ro.update(step="retire", not_before=now + timing.max_zone_ttl + timing.propagation)
        done = f"ZSK {ro['new']} signs now; {ro['old']} retired (still published)"
    elif step == "submit-ds":
        if not ds_published and not force:
            raise RolloverError(f"{zk.zone}: confirm that the parent serves the DS of {ro['new']} "
                                "with --ds-published")
        ro.update(step="ds-wait", not_before=now + timing.parent_ds_ttl + timing.propagation)
        done = (f"parent DS points at {ro['new']}; {ro['old']} keeps signing until the old DS "
                "has left the caches")
    elif step in ("retire", "ds-wait"):
        zk.set_state(ro["old"], "removed", now)
        zk.rollover = None
        done = f"{ro['old']} removed from the DNSKEY RRset: rollover complete"
    else:
        raise RolloverError(f"{zk.zone}: unknown rollover step {step!r} in the state file")
    zk.save()
    return done
