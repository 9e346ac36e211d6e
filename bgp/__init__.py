"""Anycast controller: an ExaBGP API process that announces, de-prefers, drains and withdraws a
site's prefixes by health, with a global guard against withdrawing a prefix everywhere."""
