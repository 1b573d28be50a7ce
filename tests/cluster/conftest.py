"""Fixtures of the container tests: the real Docker engine, images built once per session.

Skipped only when no Docker daemon answers. Everything a test creates carries
a cluster label starting with ``ibsimtest`` and is removed by label in the
fixtures' teardown, also after a failure.
"""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture(scope="session")
def docker_client():
    from ibsim.errors import HostError
    try:
        from ibsim.hosts import docker_client as connect
        client = connect()
    except HostError as exc:
        pytest.skip(f"no Docker daemon: {exc}")
    return client


@pytest.fixture(scope="session")
def host_image(docker_client):
    """``ibsim-host`` built (debootstrap base included) once per session, reused by its tag."""
    from ibsim.hosts.images import build_image
    tag, _ = build_image(docker_client, "host")
    return tag


@contextlib.contextmanager
def running_cluster(docker_client, scenario_file, name: str):
    """A Cluster of ``scenario_file`` brought up; down and everything labelled ``name`` removed after."""
    from ibsim import Cluster
    from ibsim.hosts import remove_cluster
    from ibsim.scenario import Scenario
    c = Cluster(Scenario.from_file(scenario_file))
    try:
        c.up()
        yield c
    finally:
        c.down(write=False)
        remove_cluster(docker_client, name)
