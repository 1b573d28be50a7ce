"""Subnet management agent: SMP attribute handlers (LID-routed and directed route alike).

Each handler is ``fn(view, method, mod, port, data) -> (status, reply_data)``:
``port`` is the port index where the SMP arrived (a switch's port 0 for a
LID-routed SMP to a switch, the physical ingress port for a directed route),
``data`` the 64 request data bytes. ``reply_data`` of None means "echo the
request data" (used with error statuses). Gets read the live fabric; Sets go
through the simulation's ``sm_*`` methods so the data plane follows what the
subnet manager programs.
"""

from __future__ import annotations

from ..fabric.state import ACTIVE, INIT, LINKUP
from . import codec as C
from .view import (
    LINEAR_FDB_CAP,
    MCAST_FDB_CAP,
    PARTITION_CAP_CA,
    PARTITION_CAP_SW0,
    PARTITION_ENF_CAP,
)

__all__ = ["SMP_HANDLERS"]

OK, BAD_METHOD, BAD_ATTR, BAD_FIELD = C.STATUS_OK, C.STATUS_BAD_METHOD, C.STATUS_BAD_METHOD_ATTR, C.STATUS_BAD_FIELD
GET, SET = C.METHOD_GET, C.METHOD_SET
ZERO64 = bytes(64)
_PKEY0 = b"\xff\xff" + bytes(62)
_SL2VL0 = bytes.fromhex("0123456789abcde7").ljust(64, b"\0")
_VLARB0 = {1: bytes(b for vl in range(1, 15) for b in (vl, 4)).ljust(64, b"\0"),
           2: ZERO64, 3: bytes((0, 4)).ljust(64, b"\0"), 4: ZERO64}


def _read_only(value_fn):
    def handler(v, method, mod, p, data):
        if method == GET:
            return OK, value_fn(v, mod, p)
        return (BAD_ATTR if method == SET else BAD_METHOD), value_fn(v, mod, p)
    return handler


def _node_desc(v, mod, p):
    return v.node_desc_bytes[v.node_of_port[p]]


def _node_info(v, mod, p):
    return v.node_info[p]


def _switch_info(v, method, mod, p, data):
    n = v.node_of_port[p]
    if not v.is_switch_node[n]:
        return BAD_ATTR, None
    r = v.switch_row[n]
    si = v.switch_info[r]
    if method == SET:
        life_psc = data[11]
        v.sim.sm_set_switch_info(r, (data[6] << 8) | data[7], life_psc >> 3)
        si[11] = (life_psc & 0xF8) | (si[11] & 0x07)     # the reply buffer follows
        if life_psc & 0x04:                   # PortStateChange: write 1 to clear
            si[11] &= ~0x04 & 0xFF
    elif method != GET:
        return BAD_METHOD, None
    top = v.fdb_top[r] if v.sim.routing == "opensm" else v.sim.state.max_lid
    out = bytearray(si)
    out[6] = (top >> 8) & 0xFF
    out[7] = top & 0xFF
    return OK, bytes(out)


def _guid_info(v, method, mod, p, data):
    n = v.node_of_port[p]
    if v.is_switch_node[n]:
        p = v.first_port[n]
    cap = v.pi[p][50] or 1
    block = mod & 0xFFFF
    if block * 8 >= cap:
        return BAD_FIELD, None
    key = (p, block)
    if method == SET:
        cur = bytearray(data[:64])
        if block == 0:
            cur[0:8] = C.be64(v.port_guid[p])     # GUID0 is the port GUID, read only
        v.sim.sm_set_block("guid_info", key, bytes(cur))
    elif method != GET:
        return BAD_METHOD, None
    out = v.guid_info.get(key)
    if out is None:
        out = C.be64(v.port_guid[p]).ljust(64, b"\0") if block == 0 else ZERO64
    return OK, out


def _target_port(v, mod, p, port_in_mod: int):
    """Port index addressed by a port number in the modifier (CA: 0 = ingress port)."""
    n = v.node_of_port[p]
    if v.is_switch_node[n]:
        if port_in_mod > v.nports[n]:
            return None
        return v.first_port[n] + port_in_mod
    if port_in_mod == 0:
        return p
    if port_in_mod > v.nports[n]:
        return None
    return v.first_port[n] + port_in_mod - 1


def _port_info(v, method, mod, p, data):
    t = _target_port(v, mod, p, mod & 0xFF)
    if t is None:
        return BAD_FIELD, None
    status = OK
    if method == SET:
        status = _port_info_set(v, t, data)
    elif method != GET:
        return BAD_METHOD, None
    return status, v.port_info(t, v.port_num[p])


def _port_info_set(v, t: int, d) -> int:
    """Apply a PortInfo Set to port index t; returns the MAD status."""
    b = v.pi[t]
    sw = v.is_switch_port[t]
    port0 = sw and v.port_num[t] == 0
    b[0:16] = d[0:16]                               # M_Key, GID prefix
    b[18:20] = d[18:20]                             # MasterSMLID
    b[26:28] = d[26:28]                             # M_KeyLeasePeriod
    b[34] = (d[34] & 0xC0) | (b[34] & 0x3F)         # M_KeyProtectBits
    b[36] = d[36]                                   # NeighborMTU, MasterSMSL
    b[38] = d[38]                                   # VLHighLimit
    b[42] = (b[42] & 0xE0) | (d[42] & 0x1F)         # HOQLife
    b[51] = d[51] & 0x7F                            # MC PKey trap suppr., SubnetTimeOut
    status = OK
    if d[29]:                                       # LinkWidthEnabled (0xFF: = supported)
        b[29] = b[30] if d[29] == 0xFF else d[29] & b[30]
    lse = d[35] & 0x0F
    if lse:
        b[35] = (b[35] & 0xF0) | ((b[32] >> 4) if lse == 0x0F else lse)
    lsee = d[63] & 0x1F
    if lsee:
        b[63] = (b[63] & 0xE0) | ((b[62] & 0x0F) if lsee == 0x1F else 0 if lsee == 0x1E else lsee)
    if (d[29] or lse or lsee) and not port0 and v.peer[t] >= 0:
        v.sim.sm_set_rate_enabled(t, b[29], b[35] & 0x0F, b[63] & 0x1F)   # at the next training
    if d[33] & 0x0F:
        b[33] = (b[33] & 0xF0) | (d[33] & 0x0F)     # LinkDownDefaultState
    opvl = d[43] >> 4
    if opvl:
        if opvl > (b[37] >> 4):
            status = BAD_FIELD
        else:
            b[43] = (opvl << 4) | (d[43] & 0x0F)
    lid = (d[16] << 8) | d[17]
    lmc = d[34] & 0x07
    if not sw or port0:
        if lid >= 0xC000:
            status = BAD_FIELD
        else:
            v.set_lid(t, lid, lmc)
    else:
        b[16:18] = d[16:18]                         # stored, not used for routing
    phys = d[33] >> 4
    if not port0 and v.peer[t] >= 0 and phys in (2, 3):
        v.sim.sm_set_enabled(t, phys == 2)
    want = d[32] & 0x0F
    if want and not port0:
        st = _set_state(v, t, want)
        if st != OK:
            status = st
    return status


def _set_state(v, t: int, want: int) -> int:
    q = v.peer[t]
    cur = v.ps[t]
    if want == 1:                                   # Down: the link goes down, retrains to Init
        if q >= 0 and v.phys[t] == LINKUP and v.phys[q] == LINKUP:
            v.sim.sm_retrain(t)
        return OK
    if want == cur:
        return OK
    if want not in (3, ACTIVE) or q < 0 or v.phys[t] != LINKUP or v.phys[q] != LINKUP:
        return BAD_FIELD
    if want != cur + 1 or abs(want - v.ps[q]) > 1:
        return BAD_FIELD
    v.sim.sm_set_port_state([t], want)
    return OK


def _pkey_table(v, method, mod, p, data):
    n = v.node_of_port[p]
    if v.is_switch_node[n]:
        t = _target_port(v, mod, p, (mod >> 16) & 0xFFFF)
        if t is None:
            return BAD_FIELD, None
        size = PARTITION_CAP_SW0 if t == v.first_port[n] else PARTITION_ENF_CAP
    else:
        t, size = p, PARTITION_CAP_CA
    block = mod & 0xFFFF
    if block * 32 >= size:
        return BAD_FIELD, None
    key = (t, block)
    if method == SET:
        v.sim.sm_set_block("pkeys", key, bytes(data[:2 * min(32, size - block * 32)]).ljust(64, b"\0"))
    elif method != GET:
        return BAD_METHOD, None
    return OK, v.pkeys.get(key, _PKEY0 if block == 0 else ZERO64)


def _sl2vl(v, method, mod, p, data):
    n = v.node_of_port[p]
    if v.is_switch_node[n]:
        inp, outp = (mod >> 8) & 0xFF, mod & 0xFF
        if inp > v.nports[n] or outp > v.nports[n]:
            return BAD_FIELD, None
        key = (v.first_port[n] + outp, inp)
    else:
        key = (p, 0)
    if method == SET:
        v.sim.sm_set_block("sl2vl", key, bytes(data[:8]).ljust(64, b"\0"))
    elif method != GET:
        return BAD_METHOD, None
    return OK, v.sl2vl.get(key, _SL2VL0)


def _vl_arb(v, method, mod, p, data):
    block = (mod >> 16) & 0xFFFF
    if not 1 <= block <= 4:
        return BAD_FIELD, None
    n = v.node_of_port[p]
    if v.is_switch_node[n]:
        t = _target_port(v, mod, p, mod & 0xFFFF)
        if t is None:
            return BAD_FIELD, None
    else:
        t = p
    key = (t, block)
    if method == SET:
        v.sim.sm_set_block("vlarb", key, bytes(data[:64]))
    elif method != GET:
        return BAD_METHOD, None
    return OK, v.vlarb.get(key, _VLARB0[block])


def _lft(v, method, mod, p, data):
    n = v.node_of_port[p]
    if not v.is_switch_node[n]:
        return BAD_ATTR, None
    block = mod & 0xFFFF
    if block * 64 >= LINEAR_FDB_CAP:
        return BAD_FIELD, None
    r = v.switch_row[n]
    if method == SET:
        v.sim.sm_set_lft_block(r, block, bytes(data[:64]))
        v.sync()
    elif method != GET:
        return BAD_METHOD, None
    lo = block * 64
    w = v.lft_width
    if lo >= w:
        return OK, b"\xff" * 64
    return OK, bytes(v.lft[r * w + lo:r * w + lo + 64])


def _mft(v, method, mod, p, data):
    n = v.node_of_port[p]
    if not v.is_switch_node[n]:
        return BAD_ATTR, None
    pos, block = (mod >> 28) & 0xF, mod & 0x1FF
    if block * 32 >= MCAST_FDB_CAP or pos >= (v.nports[n] + 16) // 16:
        return OK, ZERO64                            # outside the table: zeros, as ibsim
    key = (v.switch_row[n], block, pos)
    if method == SET:
        v.sim.sm_set_block("mft", key, bytes(data[:64]))
    elif method != GET:
        return BAD_METHOD, None
    return OK, v.mft.get(key, ZERO64)


def _mlnx_ext_port_info(v, method, mod, p, data):
    t = _target_port(v, mod, p, mod & 0xFF)
    if t is None:
        return BAD_FIELD, None
    if method == SET:
        v.sim.sm_set_block("mlnx_ext", t, bytes(data[:64]))
    elif method != GET:
        return BAD_METHOD, None
    out = bytearray(v.mlnx_ext.get(t, ZERO64))
    if t in v.mlnx_fdr10:                            # FDR10: supported, enabled, active
        out[7] = out[11] = out[15] = 1
    return OK, bytes(out)


#: attribute id -> handler (the server registers them for classes 0x01 and 0x81)
SMP_HANDLERS = {
    C.ATTR_NODE_DESC: _read_only(_node_desc),
    C.ATTR_NODE_INFO: _read_only(_node_info),
    C.ATTR_SWITCH_INFO: _switch_info,
    C.ATTR_GUID_INFO: _guid_info,
    C.ATTR_PORT_INFO: _port_info,
    C.ATTR_PKEY_TABLE: _pkey_table,
    C.ATTR_SL2VL: _sl2vl,
    C.ATTR_VL_ARB: _vl_arb,
    C.ATTR_LFT: _lft,
    C.ATTR_MFT: _mft,
    C.ATTR_MLNX_EXT_PORT_INFO: _mlnx_ext_port_info,
}
