"""The handler table: ``HANDLERS[(mgmt_class, attr_id)] -> handler``.

One entry per attribute the simulated agents answer themselves; anything
else is forwarded to a client (SA, SMInfo, notices) or refused by the
dispatcher (see :mod:`ibsim.mad.dispatch`). LID-routed (0x01) and
directed-route (0x81) SMPs share the SMP handlers.

Handler signature: ``fn(view, method, attr_mod, port, data) -> (status, reply_data)``.
"""

from __future__ import annotations

from . import codec as C
from .perf import PERF_HANDLERS
from .smp import SMP_HANDLERS

__all__ = ["FORWARDED_SMP_ATTRS", "HANDLERS"]

HANDLERS: dict[tuple[int, int], object] = {}
for _attr, _fn in SMP_HANDLERS.items():
    HANDLERS[(C.CLASS_SMP_LID, _attr)] = _fn
    HANDLERS[(C.CLASS_SMP_DR, _attr)] = _fn
for _attr, _fn in PERF_HANDLERS.items():
    HANDLERS[(C.CLASS_PERF, _attr)] = _fn

#: SMP attributes an SMA does not answer: they go to the SM client of the port
FORWARDED_SMP_ATTRS = frozenset({C.ATTR_SM_INFO, C.ATTR_NOTICE})
