"""Fixtures of the monitoring benchmark's tests: real OpenSM, carbon-cache and tools on loopback."""

from __future__ import annotations

import shutil

import pytest

from ibsim.bench.ofed import have_tools


def need_servers(*tools: str) -> None:
    """Skip, naming the Debian package, when a server or tool is genuinely absent."""
    if not have_tools("opensm", *tools):
        pytest.skip("needs opensm, infiniband-diags and libumad2sim0 (apt-get install ...)")
    if not shutil.which("carbon-cache"):
        pytest.skip("needs carbon-cache: apt-get install graphite-carbon")


from tests.cluster.conftest import docker_client, host_image  # noqa: E402,F401  (the session's images)
