"""Management plane: speak linux-rdma ibsim's wire protocol to the unmodified OFED tools.

OpenSM, ibnetdiscover, perfquery, smpquery, ibroute, iblinkinfo,
ibqueryerrors, sminfo and saquery attach through ``libumad2sim.so``
(``LD_PRELOAD``) exactly as they do to the C ``ibsim``, and see the live
fabric of a running :class:`~ibsim.engine.Simulation`.

codec     pure pack/unpack: control messages, 288-byte frames, attribute layouts
view      FabricView: per-port SMA/PMA state, precomputed replies, DR and LID routing
smp       SMP handlers (NodeInfo, PortInfo, SwitchInfo, LFT, MFT, P_Key, SL2VL, VLArb, ...)
perf      PerfMgt handlers (ClassPortInfo, PortCounters, PortCountersExtended, ...)
handlers  HANDLERS[(mgmt_class, attr_id)]
clients   client slots and SM clients
dispatch  Dispatcher: control protocol, per-frame pipeline, traps (no sockets)
server    MadServer: sockets and the server thread; start_mad_server()

The command ``python -m ibsim serve`` is in :mod:`ibsim.cli.serve`; the
test tooling that drives OpenSM and infiniband-diags is :mod:`ibsim.testing`.
"""

from .dispatch import Dispatcher
from .server import MadServer, abstract_name, start_mad_server

__all__ = ["Dispatcher", "MadServer", "abstract_name", "start_mad_server"]
