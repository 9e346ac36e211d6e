"""GSLB answers: octoDNS `dynamic` records (pools, rules, fallbacks) and our `octodns.gslb` policies."""
