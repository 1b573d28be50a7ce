/*
 * ibsim.mad._fastpath: the MAD server's socket loop and its common case in C.
 *
 * Python keeps every protocol decision (ibsim/mad/dispatch.py). This module
 * only makes the hot path cheap:
 *
 *   - Loop.run() waits in epoll_wait and reads the ready datagrams with the
 *     GIL released, so the tick thread and OpenSM's threads run meanwhile;
 *   - the most frequent request of discovery, a directed-route SMP Get of
 *     NodeInfo, NodeDescription, PortInfo, SwitchInfo or
 *     LinearForwardingTable that reaches its port, is answered here from the
 *     same tables the Python handlers read (FabricView), byte for byte as
 *     Dispatcher.frame would answer it (tests/mad/test_fastpath.py checks
 *     that on every case);
 *   - everything else (Sets, LID routing, PerfMgt, SA, errors, bounces,
 *     control messages, traps) goes back to Python unchanged.
 *
 * Tables are borrowed buffers (numpy arrays, bytearrays) registered with
 * Loop.tables(); every index read from the wire is bounds-checked against
 * them. The fast path runs with the GIL and the simulation's lock held, so it
 * sees the state between two ticks, like the Python path.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME 288
#define BATCH 16            /* datagrams read from one socket per readiness event */
#define MAX_FRAMES 256      /* datagrams handled per run() */
#define MAX_EVENTS 64
#define MAX_HOPS 63
#define LINKUP 5
#define LINEAR_FDB_CAP 0xC000

#define ATTR_NODE_DESC 0x0010
#define ATTR_NODE_INFO 0x0011
#define ATTR_SWITCH_INFO 0x0012
#define ATTR_PORT_INFO 0x0015
#define ATTR_PKEY_TABLE 0x0016
#define ATTR_LFT 0x0019
#define ATTR_MLNX_EXT_PORT_INFO 0xFF90
#define PARTITION_CAP_SW0 8
#define PARTITION_CAP_CA 64
#define PARTITION_ENF_CAP 64

/* the tables, in the order Loop.tables() takes them */
enum {
    T_NODE_OF_PORT,   /* int32 [ports] */
    T_PORT_NUM,       /* int32 [ports] */
    T_PEER,           /* int32 [ports], -1: uncabled */
    T_FIRST_PORT,     /* int32 [nodes] */
    T_NPORTS,         /* int32 [nodes] */
    T_IS_SWITCH,      /* uint8 [nodes] */
    T_SWITCH_ROW,     /* int32 [nodes], -1 for a CA */
    T_PHYS,           /* uint8 [ports], live */
    T_PS,             /* uint8 [ports], live */
    T_LID,            /* uint16 [ports], live */
    T_LFT,            /* uint8 [switches * width], live */
    T_PI,             /* 64 bytes per port: stored PortInfo */
    T_NODE_INFO,      /* 64 bytes per port */
    T_NODE_DESC,      /* 64 bytes per node */
    T_SWITCH_INFO,    /* 64 bytes per switch */
    T_FDB_TOP,        /* int32 [switches] */
    N_TABLES
};

static const Py_ssize_t t_item[N_TABLES] = {4, 4, 4, 4, 4, 1, 4, 1, 1, 2, 1, 64, 64, 64, 64, 4};

typedef struct {
    PyObject_HEAD
    Py_buffer buf[N_TABLES];
    int have_tables;
    Py_ssize_t n_ports, n_nodes, n_switches, lft_width;
    int epfd;
    int *fd_slot;           /* fd -> slot (>= 0) or -1 (hand to Python) or -2 (unknown) */
    int fd_cap;
    int *slot_fd;           /* slot -> fd, -1 if none */
    int slot_cap;
    PyObject *slots;        /* ClientTable.slots: list of Client or None */
    PyObject *acquire, *release;   /* the simulation lock's bound methods */
    PyObject *sync;         /* sync(): re-take replaced arrays and call tables() again */
    PyObject *pending;      /* Simulation.mgmt_pending: egress ports of MADs not yet counted */
    PyObject *sim, *state;  /* to notice a replaced LFT or LID array and the SM mode */
    PyObject *seen_lft, *seen_lid;  /* the arrays the tables were taken from */
    PyObject *port_name, *lft_name, *lid_name, *routing_name;   /* interned attribute names */
    PyObject *pkeys;        /* FabricView.pkeys: {(port, block): 64 bytes} */
    PyObject *mlnx_ext;     /* FabricView.mlnx_ext: {port: 64 bytes} */
    PyObject *mlnx_fdr10;   /* FabricView.mlnx_fdr10: set of FDR10 ports */
    /* run() scratch */
    unsigned char frames[MAX_FRAMES][FRAME + 1];
    int flen[MAX_FRAMES];
    int fslot[MAX_FRAMES];
    int32_t *egress;
    Py_ssize_t n_egress, egress_cap;
} Loop;

static void drop_refs(Loop *L)
{
    Py_CLEAR(L->slots);
    Py_CLEAR(L->acquire);
    Py_CLEAR(L->release);
    Py_CLEAR(L->sync);
    Py_CLEAR(L->pending);
    Py_CLEAR(L->sim);
    Py_CLEAR(L->state);
    Py_CLEAR(L->seen_lft);
    Py_CLEAR(L->seen_lid);
    Py_CLEAR(L->pkeys);
    Py_CLEAR(L->mlnx_ext);
    Py_CLEAR(L->mlnx_fdr10);
}

#define I32(L, t) ((const int32_t *)(L)->buf[t].buf)
#define U8(L, t) ((const unsigned char *)(L)->buf[t].buf)

static void release_tables(Loop *L)
{
    for (int i = 0; i < N_TABLES; i++)
        if (L->buf[i].obj)
            PyBuffer_Release(&L->buf[i]);
    L->have_tables = 0;
}

static int Loop_init(Loop *L, PyObject *args, PyObject *kw)
{
    static char *names[] = {"slots", "lock", "sync", "sim", NULL};
    PyObject *slots, *lock, *sync, *sim;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!OOO", names, &PyList_Type, &slots, &lock, &sync, &sim))
        return -1;
    drop_refs(L);
    if (L->epfd >= 0)
        close(L->epfd);
    L->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (L->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    L->slots = Py_NewRef(slots);
    L->sync = Py_NewRef(sync);
    L->sim = Py_NewRef(sim);
    L->acquire = PyObject_GetAttrString(lock, "acquire");
    L->release = PyObject_GetAttrString(lock, "release");
    L->pending = PyObject_GetAttrString(sim, "mgmt_pending");
    PyObject *fabric = PyObject_GetAttrString(sim, "fabric");
    L->state = fabric ? PyObject_GetAttrString(fabric, "state") : NULL;
    Py_XDECREF(fabric);
    if (!L->acquire || !L->release || !L->pending || !L->state)
        return -1;
    if (!PyList_Check(L->pending)) {
        PyErr_SetString(PyExc_TypeError, "sim.mgmt_pending must be a list");
        return -1;
    }
    if (!L->port_name) {
        L->port_name = PyUnicode_InternFromString("port");
        L->lft_name = PyUnicode_InternFromString("lft");
        L->lid_name = PyUnicode_InternFromString("lid");
        L->routing_name = PyUnicode_InternFromString("routing");
    }
    return (L->port_name && L->lft_name && L->lid_name && L->routing_name) ? 0 : -1;
}

static PyObject *Loop_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    Loop *L = (Loop *)type->tp_alloc(type, 0);
    if (L)
        L->epfd = -1;
    return (PyObject *)L;
}

static void Loop_dealloc(Loop *L)
{
    release_tables(L);
    if (L->epfd >= 0)
        close(L->epfd);
    PyMem_Free(L->fd_slot);
    PyMem_Free(L->slot_fd);
    PyMem_Free(L->egress);
    drop_refs(L);
    Py_XDECREF(L->port_name);
    Py_XDECREF(L->lft_name);
    Py_XDECREF(L->lid_name);
    Py_XDECREF(L->routing_name);
    Py_TYPE(L)->tp_free((PyObject *)L);
}

/* tables(node_of_port, port_num, peer, first_port, nports, is_switch, switch_row, phys, ps, lid,
 *        lft, pi, node_info, node_desc, switch_info, fdb_top, lft_width, pkeys, mlnx_ext, mlnx_fdr10) */
static PyObject *Loop_tables(Loop *L, PyObject *args)
{
    PyObject *objs[N_TABLES], *pkeys, *mlnx_ext, *fdr10;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOOOOnO!O!O!", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5], &objs[6], &objs[7], &objs[8], &objs[9], &objs[10], &objs[11],
                          &objs[12], &objs[13], &objs[14], &objs[15], &width, &PyDict_Type, &pkeys,
                          &PyDict_Type, &mlnx_ext, &PySet_Type, &fdr10))
        return NULL;
    Py_buffer nb[N_TABLES];
    memset(nb, 0, sizeof nb);
    for (int i = 0; i < N_TABLES; i++) {
        if (PyObject_GetBuffer(objs[i], &nb[i], PyBUF_C_CONTIGUOUS) < 0)
            goto fail;
        if (nb[i].len % t_item[i]) {
            PyErr_Format(PyExc_ValueError, "table %d: %zd bytes is not a whole number of %zd-byte items", i,
                         nb[i].len, t_item[i]);
            goto fail;
        }
    }
    Py_ssize_t np_ = nb[T_NODE_OF_PORT].len / 4, nn = nb[T_FIRST_PORT].len / 4;
    Py_ssize_t ns = nb[T_FDB_TOP].len / 4;
    const Py_ssize_t need_ports[] = {T_PORT_NUM, T_PEER, T_PHYS, T_PS, T_LID, T_PI, T_NODE_INFO};
    for (size_t k = 0; k < sizeof need_ports / sizeof *need_ports; k++) {
        Py_ssize_t t = need_ports[k];
        if (nb[t].len / t_item[t] != np_) {
            PyErr_Format(PyExc_ValueError, "table %zd has %zd items for %zd ports", t, nb[t].len / t_item[t], np_);
            goto fail;
        }
    }
    if (nb[T_NPORTS].len / 4 != nn || nb[T_IS_SWITCH].len != nn || nb[T_SWITCH_ROW].len / 4 != nn ||
        nb[T_NODE_DESC].len / 64 != nn || nb[T_SWITCH_INFO].len / 64 != ns || width < 0 ||
        nb[T_LFT].len != ns * width) {
        PyErr_SetString(PyExc_ValueError, "node or switch table sizes disagree");
        goto fail;
    }
    release_tables(L);
    memcpy(L->buf, nb, sizeof nb);
    Py_XSETREF(L->pkeys, Py_NewRef(pkeys));
    Py_XSETREF(L->mlnx_ext, Py_NewRef(mlnx_ext));
    Py_XSETREF(L->mlnx_fdr10, Py_NewRef(fdr10));
    Py_CLEAR(L->seen_lft);                      /* run() checks against the state's arrays again */
    Py_CLEAR(L->seen_lid);
    L->n_ports = np_;
    L->n_nodes = nn;
    L->n_switches = ns;
    L->lft_width = width;
    L->have_tables = 1;
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < N_TABLES; i++)
        if (nb[i].obj)
            PyBuffer_Release(&nb[i]);
    return NULL;
}

static int grow_int_map(int **arr, int *cap, int need)
{
    if (need < *cap)
        return 0;
    int n = *cap ? *cap : 64;
    while (n <= need)
        n *= 2;
    int *a = PyMem_Realloc(*arr, (size_t)n * sizeof(int));
    if (!a) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = *cap; i < n; i++)
        a[i] = -2;
    *arr = a;
    *cap = n;
    return 0;
}

/* add_fd(fd, slot): watch fd; its datagrams are MAD frames of that slot (slot >= 0), or the
 * fd is handed back to Python when readable (slot -1: control socket, wake-up pipe) */
static PyObject *Loop_add_fd(Loop *L, PyObject *args)
{
    int fd, slot;
    if (!PyArg_ParseTuple(args, "ii", &fd, &slot))
        return NULL;
    if (fd < 0 || slot < -1 || slot > 0xFFFF)
        return PyErr_Format(PyExc_ValueError, "bad fd %d or slot %d", fd, slot);
    if (grow_int_map(&L->fd_slot, &L->fd_cap, fd) < 0)
        return NULL;
    if (slot >= 0 && grow_int_map(&L->slot_fd, &L->slot_cap, slot) < 0)
        return NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    L->fd_slot[fd] = slot;
    if (slot >= 0)
        L->slot_fd[slot] = fd;
    Py_RETURN_NONE;
}

static PyObject *Loop_close(Loop *L, PyObject *unused)
{
    if (L->epfd >= 0) {
        close(L->epfd);
        L->epfd = -1;
    }
    release_tables(L);
    Py_RETURN_NONE;
}

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
static int fast_answer(Loop *L, int slot, Py_ssize_t src, unsigned char *b, int external)
{
    if (b[0] != 0xFF || b[1] != 0xFF)                       /* carrier DLID: permissive */
        return 0;
    if (b[32] != 1 || b[33] != 0x81 || b[34] > 2 || b[35] != 0x01)    /* DR SMP Get */
        return 0;
    if (b[36] & 0x80 || b[38] != 0 || b[39] > MAX_HOPS)     /* D bit, hop pointer, hop count */
        return 0;
    if (b[64] != 0xFF || b[65] != 0xFF || b[66] != 0xFF || b[67] != 0xFF)   /* DrSLID, DrDLID */
        return 0;
    int attr = be16(b + 48);
    if (attr != ATTR_NODE_INFO && attr != ATTR_NODE_DESC && attr != ATTR_PORT_INFO &&
        attr != ATTR_SWITCH_INFO && attr != ATTR_LFT && attr != ATTR_PKEY_TABLE &&
        attr != ATTR_MLNX_EXT_PORT_INFO)
        return 0;
    uint32_t mod = ((uint32_t)b[52] << 24) | ((uint32_t)b[53] << 16) | ((uint32_t)b[54] << 8) | b[55];
    int hc = b[39];
    const int32_t *node_of_port = I32(L, T_NODE_OF_PORT), *port_num = I32(L, T_PORT_NUM);
    const int32_t *peer = I32(L, T_PEER), *first_port = I32(L, T_FIRST_PORT), *nports = I32(L, T_NPORTS);
    const unsigned char *is_sw = U8(L, T_IS_SWITCH), *phys = U8(L, T_PHYS);
    unsigned char rp[MAX_HOPS + 1];
    int32_t out_e[MAX_HOPS], back_e[MAX_HOPS];
    Py_ssize_t cur = src;
    rp[0] = (unsigned char)port_num[src];
    for (int i = 1; i <= hc; i++) {
        int32_t n = node_of_port[cur];
        int sw = is_sw[n];
        int out = b[160 + i];
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
        if (!is_sw[tn] || port_num[t] == 0) {
            int lid = ((const uint16_t *)L->buf[T_LID].buf)[t];
            data[16] = lid >> 8;
            data[17] = lid & 0xFF;
        }
        data[28] = (unsigned char)port_num[dest];
        data[32] = (data[32] & 0xF0) | (U8(L, T_PS)[t] & 0x0F);
        data[33] = (unsigned char)((phys[t] << 4) | (data[33] & 0x0F));
        break;
    }
    case ATTR_SWITCH_INFO: {
        if (!is_sw[dn] || !external)
            return 0;                                        /* embedded SM: top is max_lid (Python) */
        int32_t r = I32(L, T_SWITCH_ROW)[dn];
        if (r < 0 || r >= L->n_switches)
            return 0;
        memcpy(data, U8(L, T_SWITCH_INFO) + (Py_ssize_t)r * 64, 64);
        int32_t top = I32(L, T_FDB_TOP)[r];
        data[6] = (top >> 8) & 0xFF;
        data[7] = top & 0xFF;
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
        if (fdr10)
            data[7] = data[11] = data[15] = 1;              /* FDR10: supported, enabled, active */
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
    b[40] = (unsigned char)(slot >> 8);
    b[41] = (unsigned char)(slot & 0xFF);
    memcpy(b + 224, rp, (size_t)hc + 1);
    b[35] = 0x81;
    b[36] = 0x80;
    b[37] = 0x00;
    memcpy(b + 96, data, (size_t)dlen);
    return 1;
}

/* attach port of a slot's client, or -1 (no client: Python drops the frame) */
static Py_ssize_t client_port(Loop *L, int slot)
{
    if (slot < 0 || slot >= PyList_GET_SIZE(L->slots))
        return -1;
    PyObject *c = PyList_GET_ITEM(L->slots, slot);
    if (c == Py_None)
        return -1;
    PyObject *port = PyObject_GetAttr(c, L->port_name);
    if (!port)
        return -2;
    Py_ssize_t p = PyLong_AsSsize_t(port);
    Py_DECREF(port);
    if (p == -1 && PyErr_Occurred())
        return -2;
    return (p >= 0 && p < L->n_ports) ? p : -1;
}

/* Before answering (lock held): re-take the tables if the engine replaced its LFT or LID array
 * (Python's sync() does that); returns 1 if an external SM programs the fabric, 0 if not, -1 on error */
static int check_state(Loop *L)
{
    PyObject *lft = PyObject_GetAttr(L->state, L->lft_name);
    PyObject *lid = lft ? PyObject_GetAttr(L->state, L->lid_name) : NULL;
    if (!lid) {
        Py_XDECREF(lft);
        return -1;
    }
    int changed = lft != L->seen_lft || lid != L->seen_lid || !L->have_tables;
    Py_DECREF(lft);
    Py_DECREF(lid);
    if (changed) {
        PyObject *r = PyObject_CallNoArgs(L->sync);
        if (!r)
            return -1;
        Py_DECREF(r);
        L->seen_lft = PyObject_GetAttr(L->state, L->lft_name);
        L->seen_lid = PyObject_GetAttr(L->state, L->lid_name);
        if (!L->seen_lft || !L->seen_lid)
            return -1;
    }
    PyObject *routing = PyObject_GetAttr(L->sim, L->routing_name);
    if (!routing)
        return -1;
    int ext = PyUnicode_Check(routing) && PyUnicode_CompareWithASCIIString(routing, "opensm") == 0;
    Py_DECREF(routing);
    return ext;
}

/* hand L->egress to the simulation (appended to sim.mgmt_pending, counted at its next flush) */
static int flush_egress(Loop *L)
{
    for (Py_ssize_t i = 0; i < L->n_egress; i++) {
        PyObject *v = PyLong_FromLong(L->egress[i]);
        if (!v || PyList_Append(L->pending, v) < 0) {
            Py_XDECREF(v);
            L->n_egress = 0;
            return -1;
        }
        Py_DECREF(v);
    }
    L->n_egress = 0;
    return 0;
}

/* answer(slot, frame, external) -> (reply bytes, [egress ports]) or None: the fast path alone,
 * no sockets, no lock (the caller holds it), no table check (the caller registered them) */
static PyObject *Loop_answer(Loop *L, PyObject *args)
{
    int slot, external;
    Py_buffer in;
    if (!PyArg_ParseTuple(args, "iy*p", &slot, &in, &external))
        return NULL;
    if (!L->have_tables || in.len != FRAME) {
        PyBuffer_Release(&in);
        Py_RETURN_NONE;
    }
    unsigned char b[FRAME];
    memcpy(b, in.buf, FRAME);
    PyBuffer_Release(&in);
    Py_ssize_t src = client_port(L, slot);
    if (src == -2)
        return NULL;
    if (src < 0)
        Py_RETURN_NONE;
    L->n_egress = 0;
    int r = fast_answer(L, slot, src, b, external);
    if (r < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    PyObject *eg = PyList_New(L->n_egress);
    if (!eg)
        return NULL;
    for (Py_ssize_t i = 0; i < L->n_egress; i++)
        PyList_SET_ITEM(eg, i, PyLong_FromLong(L->egress[i]));
    L->n_egress = 0;
    return Py_BuildValue("(y#N)", (const char *)b, (Py_ssize_t)FRAME, eg);
}

static int is_dead_errno(int e)
{
    return e == ECONNREFUSED || e == ENOTCONN || e == ENOENT || e == ECONNRESET;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* send the answered frames (GIL released): one sendmmsg per run of frames to the same socket */
static void send_answers(Loop *L, int nf, const unsigned char *ok, int *dropped, int *dead, int *ndead,
                         int dead_cap)
{
    struct mmsghdr msg[MAX_FRAMES];
    struct iovec iov[MAX_FRAMES];
    int i = 0;
    while (i < nf) {
        if (!ok[i]) {
            i++;
            continue;
        }
        int slot = L->fslot[i];
        int fd = slot < L->slot_cap ? L->slot_fd[slot] : -1;
        int n = 0, j = i;
        for (; j < nf && L->fslot[j] == slot; j++) {
            if (!ok[j])
                continue;
            iov[n].iov_base = L->frames[j];
            iov[n].iov_len = FRAME;
            memset(&msg[n], 0, sizeof msg[n]);
            msg[n].msg_hdr.msg_iov = &iov[n];
            msg[n].msg_hdr.msg_iovlen = 1;
            n++;
        }
        i = j;
        if (fd < 0)
            continue;
        int sent = 0;
        while (sent < n) {
            int k = sendmmsg(fd, msg + sent, (unsigned)(n - sent), MSG_DONTWAIT);
            if (k > 0) {
                sent += k;
                continue;
            }
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 && is_dead_errno(errno) && *ndead < dead_cap)
                dead[(*ndead)++] = slot;
            else
                *dropped += n - sent;             /* the client is not reading: its frames are lost */
            break;
        }
    }
}

/*
 * run(timeout_ms) -> (slow, ready, dead, answered, dropped)
 *
 * Serves until something needs Python: frames the fast path does not answer (slow:
 * [(slot, frame bytes)] for Dispatcher.frame), readable fds registered with slot -1 (ready:
 * control socket, wake-up pipe), slots whose client is gone (dead), or timeout_ms without
 * any datagram; it also returns every 0.2 s so the counts reach Python's stats. answered:
 * frames answered here; dropped: replies lost because the client was not reading.
 */
static PyObject *Loop_run(Loop *L, PyObject *args)
{
    int timeout;
    if (!PyArg_ParseTuple(args, "i", &timeout))
        return NULL;
    if (L->epfd < 0)
        return PyErr_Format(PyExc_ValueError, "the loop is closed");
    struct epoll_event ev[MAX_EVENTS];
    int ready[MAX_EVENTS], dead[MAX_EVENTS * 2];
    int nready = 0, ndead = 0, answered = 0, dropped = 0;
    PyObject *slow = PyList_New(0), *ready_l = NULL, *dead_l = NULL;
    if (!slow)
        return NULL;
    double until = now_s() + 0.2;
    for (;;) {
        int nev, nf = 0, err = 0;
        struct mmsghdr msg[BATCH];
        struct iovec iov[BATCH];
        Py_BEGIN_ALLOW_THREADS
        nev = epoll_wait(L->epfd, ev, MAX_EVENTS, timeout);
        if (nev < 0)
            err = errno;
        for (int i = 0; i < nev; i++) {
            int fd = ev[i].data.fd;
            int slot = (fd >= 0 && fd < L->fd_cap) ? L->fd_slot[fd] : -2;
            if (slot == -1) {
                ready[nready++] = fd;
                continue;
            }
            if (slot < 0 || nf >= MAX_FRAMES)
                continue;
            int want = MAX_FRAMES - nf < BATCH ? MAX_FRAMES - nf : BATCH;
            for (int k = 0; k < want; k++) {
                iov[k].iov_base = L->frames[nf + k];
                iov[k].iov_len = FRAME + 1;        /* one more: an oversized datagram shows */
                memset(&msg[k], 0, sizeof msg[k]);
                msg[k].msg_hdr.msg_iov = &iov[k];
                msg[k].msg_hdr.msg_iovlen = 1;
            }
            int got = recvmmsg(fd, msg, (unsigned)want, MSG_DONTWAIT, NULL);
            if (got < 0) {
                if (is_dead_errno(errno))
                    dead[ndead++] = slot;
                continue;
            }
            for (int k = 0; k < got; k++) {
                L->flen[nf] = (int)msg[k].msg_len;
                L->fslot[nf] = slot;
                nf++;
            }
        }
        Py_END_ALLOW_THREADS
        if (nev < 0 && err != EINTR) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            goto error;
        }
        unsigned char ok[MAX_FRAMES];
        int nok = 0;
        if (nf) {
            memset(ok, 0, (size_t)nf);
            PyObject *r = PyObject_CallNoArgs(L->acquire);
            if (!r)
                goto error;
            Py_DECREF(r);
            int failed = 0, external = check_state(L), slowed = 0;
            if (external < 0)
                failed = 1;
            for (int i = 0; i < nf && !failed; i++) {
                /* after the first frame for Python, the rest of the batch goes too: a Get after
                 * a Set must see the Set, as in arrival order */
                if (!slowed && L->flen[i] == FRAME && L->have_tables) {
                    Py_ssize_t src = client_port(L, L->fslot[i]);
                    if (src == -2) {
                        failed = 1;
                        break;
                    }
                    if (src >= 0) {
                        int a = fast_answer(L, L->fslot[i], src, L->frames[i], external);
                        if (a < 0) {
                            failed = 1;
                            break;
                        }
                        if (a) {
                            ok[i] = 1;
                            nok++;
                            continue;
                        }
                    }
                }
                slowed = 1;
                PyObject *t = Py_BuildValue("(iy#)", L->fslot[i], (const char *)L->frames[i],
                                            (Py_ssize_t)L->flen[i]);
                if (!t || PyList_Append(slow, t) < 0) {
                    Py_XDECREF(t);
                    failed = 1;
                    break;
                }
                Py_DECREF(t);
            }
            if (!failed && flush_egress(L) < 0)
                failed = 1;
            L->n_egress = 0;
            PyObject *et = NULL, *evl = NULL, *tb = NULL;
            if (failed)
                PyErr_Fetch(&et, &evl, &tb);
            r = PyObject_CallNoArgs(L->release);
            if (failed) {
                Py_XDECREF(r);
                PyErr_Restore(et, evl, tb);
                goto error;
            }
            if (!r)
                goto error;
            Py_DECREF(r);
        }
        if (nok) {
            answered += nok;
            Py_BEGIN_ALLOW_THREADS
            send_answers(L, nf, ok, &dropped, dead, &ndead, MAX_EVENTS * 2);
            Py_END_ALLOW_THREADS
        }
        if (nev == 0 || nready || ndead || PyList_GET_SIZE(slow) || now_s() >= until)
            break;
        if (ndead > MAX_EVENTS)
            break;
    }
    ready_l = PyList_New(nready);
    dead_l = PyList_New(ndead);
    if (!ready_l || !dead_l)
        goto error;
    for (int i = 0; i < nready; i++)
        PyList_SET_ITEM(ready_l, i, PyLong_FromLong(ready[i]));
    for (int i = 0; i < ndead; i++)
        PyList_SET_ITEM(dead_l, i, PyLong_FromLong(dead[i]));
    return Py_BuildValue("(NNNii)", slow, ready_l, dead_l, answered, dropped);
error:
    Py_XDECREF(slow);
    Py_XDECREF(ready_l);
    Py_XDECREF(dead_l);
    return NULL;
}

static PyMethodDef Loop_methods[] = {
    {"tables", (PyCFunction)Loop_tables, METH_VARARGS, "Register the fabric tables (see the module source)."},
    {"add_fd", (PyCFunction)Loop_add_fd, METH_VARARGS, "add_fd(fd, slot): watch a slot socket (slot >= 0) or hand fd back (-1)."},
    {"answer", (PyCFunction)Loop_answer, METH_VARARGS, "answer(slot, frame, external) -> (reply, egress) or None."},
    {"run", (PyCFunction)Loop_run, METH_VARARGS, "run(timeout_ms) -> (slow, ready, dead, answered, dropped)."},
    {"close", (PyCFunction)Loop_close, METH_NOARGS, "Close the epoll fd and release the tables."},
    {NULL}};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ibsim.mad._fastpath.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The MAD server's epoll loop with the directed-route Get fast path.",
    .tp_new = Loop_new,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
};

static struct PyModuleDef fastpath_module = {PyModuleDef_HEAD_INIT, "_fastpath",
                                             "C socket loop and directed-route Get fast path of the MAD server.",
                                             -1, NULL};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&LoopType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Loop", (PyObject *)&LoopType) < 0 ||
        PyModule_AddIntConstant(m, "FRAME", FRAME) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
