"""The store's spaces: what kind of document lives under which name."""

# Spaces used across the project. One place so the dashboard, DNS nodes, probes, the BGP
# controller and the dataplane agree on spellings.
PROBE = "probe"  # key "<region>|<check key>": one probe region's verdict on one check
REGION = "region"  # key "<region>": a probe agent's heartbeat {"region", "expires_at", "checks"}
SITE = "site"  # key "<site>": a site's BGP state (prefix -> state), written by bgp/
DRAIN = "drain"  # key "<site>": operator drain request for a site
OVERRIDE = "override"  # key "<check key>": operator status override ("up" / "down")
NODE = "node"  # key "<node id>": a DNS node's counters for the dashboard
ANSWERS = "answers"  # key "<fqdn> <TYPE>": which answer each region gets now, for the dashboard
CONTROL = "control"  # key "reload": {"time", "by"}: every DNS node reloads its zones when it changes
DATAPLANE = "dataplane"  # key "<node>": XDP counters per VIP and backend
