"""The Docker engine: one place that imports the Docker SDK and turns its failures into HostError."""

from __future__ import annotations

from ..errors import HostError

__all__ = ["docker_client", "docker_errors", "close_streams", "LABEL", "ROLE_LABEL"]

#: every container and network of a cluster carries ``org.ibsim.cluster=<name>``
LABEL = "org.ibsim.cluster"
#: ``host`` or ``graphite``
ROLE_LABEL = "org.ibsim.role"


def _sdk():
    try:
        import docker
    except ImportError:
        raise HostError("container hosts need the Docker SDK for Python: "
                        "pip install 'ibsim[containers]'") from None
    return docker


def docker_errors():
    """The SDK's ``docker.errors`` module."""
    return _sdk().errors


def docker_client(timeout: float = 120.0):
    """A client for the engine in ``DOCKER_HOST`` (or the local socket), checked with a ping.

    Raises
    ------
    HostError
        When the SDK is missing or no Docker daemon answers.
    """
    docker = _sdk()
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise HostError(f"Docker is not reachable ({str(exc).splitlines()[0][:160]}); start the "
                        "Docker daemon or set DOCKER_HOST") from None
    return client


def close_streams(streams, threads, timeout: float = 5.0) -> None:
    """Close the SDK's blocking streams (events, logs) and join the threads that read them."""
    for s in streams:
        try:
            s.close()
        except Exception:  # noqa: BLE001 - a stream the engine already closed
            pass
    for t in threads:
        t.join(timeout=timeout)
