"""Only for the optional C helpers; everything else is in pyproject.toml."""

from setuptools import Extension, setup

UDP_COMMON = ["gslb/server/udp_common.h"]  # shared by both UDP loops: rebuild both when it changes

setup(ext_modules=[
    Extension("gslb.server._udpbatch", ["gslb/server/_udpbatch.c"], depends=UDP_COMMON, optional=True),
    Extension("gslb.server._engine", ["gslb/server/_engine.c"], optional=True,
              depends=[*UDP_COMMON, "gslb/server/rrl.h", "gslb/server/siphash24.h", "gslb/zone/bulk_store.h"],
              extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                  "-Wno-missing-field-initializers", "-Wno-cast-function-type"]),
    Extension("gslb.zone._bulk", ["gslb/zone/_bulk.c"], depends=["gslb/zone/bulk_store.h"], libraries=["yaml"],
              optional=True, extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                                 "-Wno-missing-field-initializers"]),
    Extension("gslb.server._siphash", ["gslb/server/_siphash.c"], depends=["gslb/server/siphash24.h"],
              optional=True),
])
