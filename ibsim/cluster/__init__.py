"""The virtual cluster: scenario + simulation + MAD server + container hosts + exporters + recorder.

The composition layer between :mod:`ibsim.scenario` and :mod:`ibsim.cli`:
:class:`Cluster` (``ibsim.Cluster``) brings a scenario's ``cluster:``
section up as Docker containers coupled to the live fabric, and takes it
down again. ``python -m ibsim cluster up|status|down`` is its command line.
"""

from .core import Cluster, state_dir

__all__ = ["Cluster", "state_dir"]
