"""Compute hosts as Docker containers: images, per-host sysfs trees, containers, coupling.

An adapter beside :mod:`ibsim.export`, :mod:`ibsim.mad` and :mod:`ibsim.run`:
it reads :class:`~ibsim.engine.Snapshot` s and changes the fabric only
through ``Simulation.inject``.

Modules
-------
``engine``      the Docker SDK client and its errors (:class:`~ibsim.errors.HostError`)
``images``      build contexts under ``images/``, content-hash tags, the debootstrap base
``sysfs``       :class:`SysfsTrees`: each host's ``/sys/class/infiniband/mlx5_0`` from snapshots
``containers``  :class:`ContainerHosts`: the labelled network and containers of a cluster
``coupling``    :class:`DockerCoupling`: Docker events -> unplug/replug in the simulation
"""

from .containers import ContainerHosts, HostSpec, cluster_objects, remove_cluster
from .coupling import DockerCoupling
from .engine import LABEL, ROLE_LABEL, docker_client
from .images import IMAGES, build_images, image_tag, require_image
from .sysfs import DEVICE, SysfsTrees

__all__ = ["ContainerHosts", "HostSpec", "cluster_objects", "remove_cluster", "DockerCoupling",
           "LABEL", "ROLE_LABEL", "docker_client", "IMAGES", "build_images", "image_tag",
           "require_image", "DEVICE", "SysfsTrees"]
