"""The tables the C fast path answers from, as one named object.

:meth:`ibsim.mad.view.FabricView.fast_tables` builds a :class:`FastTables`;
``_fastpath.Loop.tables(t)`` reads its fields by name and validates them
once, when installed (again only when the engine replaces its LFT or LID
array): buffer format and item size, lengths against the port, node and
switch counts, and the values later used as indices (nodes of ports, peers,
first ports, port counts, switch rows). A bad field raises ``TypeError`` or
``ValueError`` naming it (``FastTables.peer: ...``) instead of a crash on
some later MAD. ``_fastpath.TABLE_FIELDS`` lists the names the C side reads;
``tests/mad/test_fasttables.py`` checks that they are this class's fields.

The buffers are borrowed, not copied: the live ones (``phys``, ``ps``,
``lid``, ``lft``, the stored attribute rows, ``fdb_top`` and the dicts) are
the very objects the engine and the Python handlers write, so the C path
sees every change without a new install.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["FastTables", "field_names"]


@dataclass(frozen=True, slots=True)
class FastTables:
    """The fabric as the C fast path reads it (C-contiguous buffers, native byte order).

    Counts: P ports (``len(node_of_port)``), N nodes (``len(first_port)``),
    S switches (``len(fdb_top)``); W is the LFT width (LIDs per switch row).

    Attributes
    ----------
    node_of_port : int32 buffer, (P,)
        Node index of each port, ``0 <= n < N``.
    port_num : int32 buffer, (P,)
        Port number of each port on its node, 0..255 (0: a switch's port 0).
    peer : int32 buffer, (P,)
        Port at the other end of the cable, -1 if uncabled.
    first_port : int32 buffer, (N,)
        First port index of each node; a switch's ports 0..NumPorts and a
        CA's ports 1..NumPorts follow it, inside ``0..P-1``.
    nports : int32 buffer, (N,)
        NumPorts of each node, 0..255.
    is_switch : uint8 buffer, (N,)
        1 for a switch, 0 for a CA or router.
    switch_row : int32 buffer, (N,)
        Switch row (``0..S-1``) of a switch, -1 for any other node.
    phys : uint8 buffer, (P,)
        PortPhysicalState of each port (live).
    ps : uint8 buffer, (P,)
        PortState of each port (live).
    lid : uint16 buffer, (P,)
        LID of each port (live).
    lft : uint8 buffer, (S, W)
        Linear forwarding tables, one row per switch (live).
    port_info : byte buffer, (64 * P,)
        Stored PortInfo of each port (live; LID, LocalPortNum and the states
        are filled in per reply).
    node_info : byte buffer, (64 * P,)
        NodeInfo as seen through each port.
    node_desc : byte buffer, (64 * N,)
        NodeDescription of each node.
    switch_info : byte buffer, (64 * S,)
        Stored SwitchInfo of each switch (live; LinearFDBTop filled in per reply).
    fdb_top : int32 buffer, (S,)
        LinearFDBTop of each switch as the external SM set it (live).
    pkeys : dict
        ``{(port, block): 64 bytes}``: P_Key blocks set by the SM (live).
    mlnx_ext : dict
        ``{port: 64 bytes}``: MLNX ExtendedPortInfo set by the SM (live).
    mlnx_fdr10 : set
        Ports whose link trained at FDR10 (live).
    """

    node_of_port: object
    port_num: object
    peer: object
    first_port: object
    nports: object
    is_switch: object
    switch_row: object
    phys: object
    ps: object
    lid: object
    lft: object
    port_info: object
    node_info: object
    node_desc: object
    switch_info: object
    fdb_top: object
    pkeys: dict
    mlnx_ext: dict
    mlnx_fdr10: set


def field_names() -> tuple[str, ...]:
    """The field names of :class:`FastTables`, in order."""
    return tuple(f.name for f in fields(FastTables))
