"""Build the optional C extension; everything else is in pyproject.toml.

``ibsim.mad._fastpath`` is the MAD server's socket loop and directed-route
Get fast path. It is optional: without a C compiler the install goes on and
the server runs its pure-Python loop (same answers; ibnetdiscover about 20 % slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ibsim.mad._fastpath", ["ibsim/mad/_fastpath.c", "ibsim/mad/_fastpath_smp.c",
                                                       "ibsim/mad/_fastpath_tables.c"],
                             depends=["ibsim/mad/_fastpath.h", "ibsim/mad/_fastpath_layout.h"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                                 "-Wno-missing-field-initializers"])])
