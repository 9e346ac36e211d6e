"""`python -m dataplane ACTION …` is `gslb dataplane ACTION …`."""

import sys

from gslb.cli import main

raise SystemExit(main(["dataplane", *sys.argv[1:]]))
