"""Only for the optional C helper; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("gslb.dns._udpbatch", ["gslb/dns/_udpbatch.c"], optional=True)])
