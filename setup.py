"""Only for the optional C helpers; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("gslb.server._udpbatch", ["gslb/server/_udpbatch.c"], optional=True),
    Extension("gslb.server._engine", ["gslb/server/_engine.c"], optional=True,
              extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                  "-Wno-missing-field-initializers", "-Wno-cast-function-type"]),
    Extension("gslb.server._siphash", ["gslb/server/_siphash.c"], optional=True),
])
