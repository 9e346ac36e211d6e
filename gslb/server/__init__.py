"""The authoritative DNS server: lookup (resolve), compiled answers (table), the wire fast path."""
