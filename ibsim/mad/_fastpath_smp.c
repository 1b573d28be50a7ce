/*
 * ibsim.mad._fastpath: directed-route SMP Gets answered in C, byte for byte as
 * ibsim/mad/smp.py and Dispatcher.frame answer them (tests/mad/test_fastpath.py).
 */
#include "_fastpath.h"

/* ------------------------------------------------------------------ the fast path */
static inline int be16(const unsigned char *p) { return (p[0] << 8) | p[1]; }

/* Port index of port number `num` on the node of port p, as smp._target_port (CA: 0 = p); -1 if invalid */
static Py_ssize_t target_port(Loop *L, Py_ssize_t p, int num)
{
    int32_t n = I32(L, T_NODE_OF_PORT)[p];
    int32_t first = I32(L, T_FIRST_PORT)[n], np_ = I32(L, T_NPORTS)[n];
    Py_ssize_t t;
    if (U8(L, T_IS_SWITCH)[n]) {
        if (num > np_)
            return -1;
        t = (Py_ssize_t)first + num;
    } else {
        if (num == 0)
            return p;
        if (num > np_)
            return -1;
        t = (Py_ssize_t)first + num - 1;
    }
    return (t >= 0 && t < L->n_ports) ? t : -1;
}

/* Copy the 64-byte value stored under key (a new reference, consumed) in dict d into out.
 * 1: found, 0: not stored, -1: Python error, -2: stored value is not 64+ bytes (Python decides) */
static int stored_row(PyObject *d, PyObject *key, unsigned char *out)
{
    if (!key)
        return -1;
    PyObject *v = PyDict_GetItemWithError(d, key);
    Py_DECREF(key);
    if (!v)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_Check(v) || PyBytes_GET_SIZE(v) < 64)
        return -2;
    memcpy(out, PyBytes_AS_STRING(v), 64);
    return 1;
}

/*
 * Answer frame b (288 bytes, from `slot`, whose client sits at port `src`) in place if it is a
 * directed-route SMP Get this path serves. Appends the egress ports of the links crossed (out
 * and back) to L->egress. Returns 1 when answered, 0 when Python must handle it (the frame is
 * then untouched), -1 on a Python error.
 */
int fast_answer(Loop *L, int slot, Py_ssize_t src, unsigned char *b, int external)
{
    if (be16(b + OFF_DLID) != PERMISSIVE_LID)                /* carrier DLID */
        return 0;
    if (b[OFF_BASE_VERSION] != BASE_VERSION || b[OFF_MGMT_CLASS] != CLASS_SMP_DR ||
        b[OFF_CLASS_VERSION] > MAX_CLASS_VERSION || b[OFF_METHOD] != METHOD_GET)
        return 0;
    if (be16(b + OFF_STATUS) & DR_DIRECTION || b[OFF_HOP_PTR] != 0 || b[OFF_HOP_CNT] > MAX_DR_HOPS)
        return 0;
    if (be16(b + OFF_DR_SLID) != PERMISSIVE_LID || be16(b + OFF_DR_DLID) != PERMISSIVE_LID)
        return 0;
    int attr = be16(b + OFF_ATTR_ID);
    uint32_t mod = ((uint32_t)b[OFF_ATTR_MOD] << 24) | ((uint32_t)b[OFF_ATTR_MOD + 1] << 16) |
                   ((uint32_t)b[OFF_ATTR_MOD + 2] << 8) | b[OFF_ATTR_MOD + 3];
    int hc = b[OFF_HOP_CNT];
    const int32_t *node_of_port = I32(L, T_NODE_OF_PORT), *port_num = I32(L, T_PORT_NUM);
    const int32_t *peer = I32(L, T_PEER), *first_port = I32(L, T_FIRST_PORT), *nports = I32(L, T_NPORTS);
    const unsigned char *is_sw = U8(L, T_IS_SWITCH), *phys = U8(L, T_PHYS);
    unsigned char rp[MAX_DR_HOPS + 1];
    int32_t out_e[MAX_DR_HOPS], back_e[MAX_DR_HOPS];
    Py_ssize_t cur = src;
    rp[0] = (unsigned char)port_num[src];
    for (int i = 1; i <= hc; i++) {
        int32_t n = node_of_port[cur];
        int sw = is_sw[n];
        int out = b[OFF_IPATH + i];
        if (i > 1 && !sw)
            return 0;                                        /* no passing through a CA */
        if (out == 0 || out > nports[n])
            return 0;
        Py_ssize_t e = (Py_ssize_t)first_port[n] + (sw ? out : out - 1);
        if (e < 0 || e >= L->n_ports)
            return 0;
        int32_t q = peer[e];
        if (q < 0 || q >= L->n_ports || phys[e] != LINKUP || phys[q] != LINKUP)
            return 0;
        rp[i] = (unsigned char)port_num[q];
        out_e[i - 1] = (int32_t)e;
        back_e[i - 1] = q;
        cur = q;
    }
    Py_ssize_t dest = cur;
    int32_t dn = node_of_port[dest];
    unsigned char data[64];
    Py_ssize_t dlen = 64;
    switch (attr) {
    case ATTR_NODE_INFO:
        memcpy(data, U8(L, T_NODE_INFO) + dest * 64, 64);
        break;
    case ATTR_NODE_DESC:
        memcpy(data, U8(L, T_NODE_DESC) + (Py_ssize_t)dn * 64, 64);
        break;
    case ATTR_PORT_INFO: {
        Py_ssize_t t = target_port(L, dest, (int)(mod & 0xFF));
        if (t < 0)
            return 0;
        memcpy(data, U8(L, T_PI) + t * 64, 64);
        int32_t tn = node_of_port[t];
        if (!is_sw[tn] || port_num[t] == 0)                  /* a switch port's own LID: stored */
            put_field(data, PORT_INFO_LID, U16(L, T_LID)[t]);
        put_field(data, PORT_INFO_LocalPortNum, (uint64_t)port_num[dest]);
        put_field(data, PORT_INFO_PortState, U8(L, T_PS)[t]);
        put_field(data, PORT_INFO_PortPhysicalState, phys[t]);
        break;
    }
    case ATTR_SWITCH_INFO: {
        if (!is_sw[dn] || !external)
            return 0;                                        /* embedded SM: top is max_lid (Python) */
        int32_t r = I32(L, T_SWITCH_ROW)[dn];
        if (r < 0 || r >= L->n_switches)
            return 0;
        memcpy(data, U8(L, T_SWITCH_INFO) + (Py_ssize_t)r * 64, 64);
        put_field(data, SWITCH_INFO_LinearFDBTop, (uint32_t)I32(L, T_FDB_TOP)[r]);
        break;
    }
    case ATTR_LFT: {
        if (!is_sw[dn])
            return 0;
        uint32_t block = mod & 0xFFFF;
        if (block * 64 >= LINEAR_FDB_CAP)
            return 0;
        int32_t r = I32(L, T_SWITCH_ROW)[dn];
        if (r < 0 || r >= L->n_switches)
            return 0;
        Py_ssize_t lo = (Py_ssize_t)block * 64, w = L->lft_width;
        if (lo >= w) {
            memset(data, 0xFF, 64);
        } else {
            dlen = w - lo < 64 ? w - lo : 64;
            memcpy(data, U8(L, T_LFT) + (Py_ssize_t)r * w + lo, (size_t)dlen);
        }
        break;
    }
    case ATTR_PKEY_TABLE: {
        Py_ssize_t t = dest;
        int size = PARTITION_CAP_CA;
        if (is_sw[dn]) {
            t = target_port(L, dest, (int)((mod >> 16) & 0xFFFF));
            if (t < 0)
                return 0;
            size = t == first_port[dn] ? PARTITION_CAP_SW0 : PARTITION_ENF_CAP;
        }
        uint32_t block = mod & 0xFFFF;
        if (block * 32 >= (uint32_t)size)
            return 0;
        int got = stored_row(L->pkeys, Py_BuildValue("(nI)", t, block), data);
        if (got < 0)
            return got == -1 ? -1 : 0;
        if (!got) {
            memset(data, 0, 64);
            if (block == 0)
                data[0] = data[1] = 0xFF;                   /* the default full-member P_Key */
        }
        break;
    }
    case ATTR_MLNX_EXT_PORT_INFO: {
        Py_ssize_t t = target_port(L, dest, (int)(mod & 0xFF));
        if (t < 0)
            return 0;
        PyObject *key = PyLong_FromSsize_t(t);
        if (!key)
            return -1;
        int fdr10 = PySet_Contains(L->mlnx_fdr10, key);
        int got = fdr10 < 0 ? -1 : stored_row(L->mlnx_ext, Py_NewRef(key), data);
        Py_DECREF(key);
        if (fdr10 < 0 || got == -1)
            return -1;
        if (got < 0)
            return 0;
        if (!got)
            memset(data, 0, 64);
        if (fdr10) {                                         /* FDR10: supported, enabled, active */
            put_field(data, MLNX_EXT_PORT_INFO_LinkSpeedSupported, 1);
            put_field(data, MLNX_EXT_PORT_INFO_LinkSpeedEnabled, 1);
            put_field(data, MLNX_EXT_PORT_INFO_LinkSpeedActive, 1);
        }
        break;
    }
    default:
        return 0;
    }
    /* room for the links crossed, out and back */
    if (L->n_egress + 2 * hc > L->egress_cap) {
        Py_ssize_t cap = L->egress_cap ? L->egress_cap : 4096;
        while (cap < L->n_egress + 2 * hc)
            cap *= 2;
        int32_t *a = PyMem_Realloc(L->egress, (size_t)cap * sizeof(int32_t));
        if (!a) {
            PyErr_NoMemory();
            return -1;
        }
        L->egress = a;
        L->egress_cap = cap;
    }
    for (int i = 0; i < hc; i++)
        L->egress[L->n_egress++] = out_e[i];
    for (int i = hc - 1; i >= 0; i--)
        L->egress[L->n_egress++] = back_e[i];
    /* the reply: TID tagged with the slot, return path, GetResp, D bit, data */
    b[OFF_TID] = (unsigned char)(slot >> 8);
    b[OFF_TID + 1] = (unsigned char)(slot & 0xFF);
    memcpy(b + OFF_RPATH, rp, (size_t)hc + 1);
    b[OFF_METHOD] = METHOD_GET_RESP;
    b[OFF_STATUS] = DR_DIRECTION >> 8;
    b[OFF_STATUS + 1] = DR_DIRECTION & 0xFF;
    memcpy(b + OFF_DATA, data, (size_t)dlen);
    return 1;
}
