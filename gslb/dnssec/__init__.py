"""DNSSEC online signing: keys in BIND files, signatures made once per distinct RRset, compact denial.

- `keys`: read and write `K<zone>+<alg>+<tag>.key/.private` (the format of dnssec-keygen).
- `state`: the rollover state file kept next to the keys, and the rollover steps.
- `config`: the per-zone `dnssec:` mapping of gslb.yaml.
- `signer`: one `ZoneSigner` per signed zone: DNSKEY/CDS/CDNSKEY, RRSIGs cached by RRset, NSECs.
- `serve`: the compile-time hooks that give each compiled `Entry` a signed twin (`Entry.signed`).
- `denial`: never-seen names' signed answers laid out as wire from their template: one NSEC signature each.
- `cli`: `gslb dnssec keygen|ds|status|rollover`.
"""
