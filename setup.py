"""Only for the optional C helper; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("gslb.server._udpbatch", ["gslb/server/_udpbatch.c"], optional=True),
                   Extension("gslb.server._siphash", ["gslb/server/_siphash.c"], optional=True)])
