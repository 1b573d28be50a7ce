/*
 * ibsim.mad._fastpath: Loop.tables(t), the install of a FastTables (ibsim/mad/fasttables.py).
 *
 * Every field is read by name and checked once, here, so that fast_answer() can index the
 * tables with the values they hold: the item format and size of each buffer, its length
 * against the port, node and switch counts, and the values later used as indices. A bad field
 * raises TypeError (wrong kind of buffer) or ValueError (wrong length or value) naming it,
 * "FastTables.<field>: ...", and leaves the tables installed before untouched.
 */
#include "_fastpath.h"

enum { K_I32, K_U8, K_U16, K_BYTES };            /* item kinds */
enum { D_PORTS, D_NODES, D_SWITCHES, D_LFT };    /* what a table's length counts */

typedef struct {
    const char *name;       /* the FastTables field */
    int kind, dim;
} table_spec;

static const table_spec TABLE_SPECS[N_TABLES] = {
    [T_NODE_OF_PORT] = {"node_of_port", K_I32, D_PORTS},
    [T_PORT_NUM] = {"port_num", K_I32, D_PORTS},
    [T_PEER] = {"peer", K_I32, D_PORTS},
    [T_FIRST_PORT] = {"first_port", K_I32, D_NODES},
    [T_NPORTS] = {"nports", K_I32, D_NODES},
    [T_IS_SWITCH] = {"is_switch", K_U8, D_NODES},
    [T_SWITCH_ROW] = {"switch_row", K_I32, D_NODES},
    [T_PHYS] = {"phys", K_U8, D_PORTS},
    [T_PS] = {"ps", K_U8, D_PORTS},
    [T_LID] = {"lid", K_U16, D_PORTS},
    [T_LFT] = {"lft", K_U8, D_LFT},
    [T_PI] = {"port_info", K_BYTES, D_PORTS},
    [T_NODE_INFO] = {"node_info", K_BYTES, D_PORTS},
    [T_NODE_DESC] = {"node_desc", K_BYTES, D_NODES},
    [T_SWITCH_INFO] = {"switch_info", K_BYTES, D_SWITCHES},
    [T_FDB_TOP] = {"fdb_top", K_I32, D_SWITCHES},
};

/* the Python objects after the buffers, in FastTables order */
enum { O_PKEYS, O_MLNX_EXT, O_MLNX_FDR10, N_OBJECTS };
static const char *const OBJECT_NAMES[N_OBJECTS] = {"pkeys", "mlnx_ext", "mlnx_fdr10"};

static const char *const KIND_NAME[] = {"int32", "uint8", "uint16", "bytes"};
static const Py_ssize_t KIND_SIZE[] = {4, 1, 2, 1};
static const Py_ssize_t ROW = 64;                /* bytes per stored attribute (K_BYTES) */

PyObject *table_field_names(void)
{
    PyObject *t = PyTuple_New(N_TABLES + N_OBJECTS);
    if (!t)
        return NULL;
    for (int i = 0; i < N_TABLES + N_OBJECTS; i++) {
        const char *name = i < N_TABLES ? TABLE_SPECS[i].name : OBJECT_NAMES[i - N_TABLES];
        PyObject *s = PyUnicode_FromString(name);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

void release_tables(Loop *L)
{
    for (int i = 0; i < N_TABLES; i++)
        if (L->buf[i].obj)
            PyBuffer_Release(&L->buf[i]);
    L->have_tables = 0;
}

/* whether a struct-module format string is one native item of the kind */
static int format_ok(const char *fmt, int kind)
{
    if (!fmt)
        fmt = "B";
    if (fmt[0] == '@' || fmt[0] == '=' || (PY_LITTLE_ENDIAN && fmt[0] == '<'))
        fmt++;
    if (!fmt[0] || fmt[1])
        return 0;
    switch (kind) {
    case K_I32:
        return fmt[0] == 'i' || (sizeof(long) == 4 && fmt[0] == 'l');
    case K_U16:
        return fmt[0] == 'H';
    case K_U8:
        return fmt[0] == 'B';
    default:
        return fmt[0] == 'B' || fmt[0] == 'b' || fmt[0] == 'c';
    }
}

/* take field i's buffer into *b and check its kind and shape (the counts come later) */
static int take(PyObject *t, int i, Py_buffer *b)
{
    const table_spec *s = &TABLE_SPECS[i];
    PyObject *obj = PyObject_GetAttrString(t, s->name);
    if (!obj)
        return -1;
    int r = PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT);
    if (r < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "FastTables.%s: a %s object is not a C-contiguous buffer", s->name,
                     Py_TYPE(obj)->tp_name);
    }
    Py_DECREF(obj);
    if (r < 0)
        return -1;
    int ndim = s->dim == D_LFT ? 2 : 1;
    if (!format_ok(b->format, s->kind) || b->itemsize != KIND_SIZE[s->kind]) {
        PyErr_Format(PyExc_TypeError, "FastTables.%s: %s items wanted, got format '%s' (%zd bytes)", s->name,
                     KIND_NAME[s->kind], b->format ? b->format : "B", b->itemsize);
        return -1;
    }
    if (b->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "FastTables.%s: %d dimension(s) wanted, got %d", s->name, ndim, b->ndim);
        return -1;
    }
    return 0;
}

static Py_ssize_t items(const Py_buffer *b)
{
    return b->len / b->itemsize;
}

#define FAIL(...)                                                                                           \
    do {                                                                                                    \
        PyErr_Format(PyExc_ValueError, __VA_ARGS__);                                                        \
        return -1;                                                                                          \
    } while (0)

/* lengths against P ports, N nodes, S switches; sets *width (LIDs per LFT row) */
static int check_lengths(const Py_buffer *nb, Py_ssize_t P, Py_ssize_t N, Py_ssize_t S, Py_ssize_t *width)
{
    static const char *const what[] = {"ports", "nodes", "switches"};
    for (int i = 0; i < N_TABLES; i++) {
        const table_spec *s = &TABLE_SPECS[i];
        if (s->dim == D_LFT) {
            if (nb[i].shape[0] != S)
                FAIL("FastTables.%s: %zd rows for %zd switches", s->name, nb[i].shape[0], S);
            *width = nb[i].shape[1];
            continue;
        }
        Py_ssize_t want = s->dim == D_PORTS ? P : s->dim == D_NODES ? N : S;
        Py_ssize_t per = s->kind == K_BYTES ? ROW : 1, got = items(&nb[i]);
        if (got != want * per)
            FAIL("FastTables.%s: %zd items for %zd %s%s", s->name, got, want, what[s->dim],
                 per > 1 ? " (64 bytes each)" : "");
    }
    return 0;
}

/* the values fast_answer() uses as indices */
static int check_values(const Py_buffer *nb, Py_ssize_t P, Py_ssize_t N, Py_ssize_t S)
{
    const int32_t *node_of_port = nb[T_NODE_OF_PORT].buf, *port_num = nb[T_PORT_NUM].buf;
    const int32_t *peer = nb[T_PEER].buf, *first = nb[T_FIRST_PORT].buf, *nports = nb[T_NPORTS].buf;
    const int32_t *row = nb[T_SWITCH_ROW].buf;
    const unsigned char *is_sw = nb[T_IS_SWITCH].buf;
    for (Py_ssize_t p = 0; p < P; p++) {
        if (node_of_port[p] < 0 || node_of_port[p] >= N)
            FAIL("FastTables.node_of_port[%zd] = %d is not a node (0..%zd)", p, node_of_port[p], N - 1);
        if (port_num[p] < 0 || port_num[p] > 255)
            FAIL("FastTables.port_num[%zd] = %d is not a port number (0..255)", p, port_num[p]);
        if (peer[p] < -1 || peer[p] >= P)
            FAIL("FastTables.peer[%zd] = %d is neither a port (0..%zd) nor -1", p, peer[p], P - 1);
    }
    Py_ssize_t switches = 0;
    for (Py_ssize_t n = 0; n < N; n++) {
        if (is_sw[n] > 1)
            FAIL("FastTables.is_switch[%zd] = %d is not 0 or 1", n, is_sw[n]);
        if (nports[n] < 0 || nports[n] > 255)
            FAIL("FastTables.nports[%zd] = %d is not a NumPorts (0..255)", n, nports[n]);
        Py_ssize_t count = (Py_ssize_t)nports[n] + is_sw[n];     /* a switch has port 0 too */
        if (first[n] < 0 || first[n] + count > P)
            FAIL("FastTables.first_port[%zd] = %d: its %zd ports are not all in 0..%zd", n, first[n], count, P - 1);
        for (Py_ssize_t k = 0; k < count; k++) {
            Py_ssize_t p = first[n] + k;
            if (node_of_port[p] != n)
                FAIL("FastTables.node_of_port[%zd] = %d, but it is port %zd of node %zd (first_port)", p,
                     node_of_port[p], k + !is_sw[n], n);
            if (port_num[p] != k + !is_sw[n])
                FAIL("FastTables.port_num[%zd] = %d, but it is port %zd of node %zd (first_port)", p, port_num[p],
                     k + !is_sw[n], n);
        }
        if (is_sw[n] ? (row[n] < 0 || row[n] >= S) : row[n] != -1)
            FAIL("FastTables.switch_row[%zd] = %d: a %s wants %s", n, row[n], is_sw[n] ? "switch" : "CA",
                 is_sw[n] ? "a switch row" : "-1");
        switches += is_sw[n];
    }
    if (switches != S)
        FAIL("FastTables.switch_row: %zd switches for %zd switch rows", switches, S);
    return 0;
}

int install_tables(Loop *L, PyObject *t)
{
    Py_buffer nb[N_TABLES];
    PyObject *objs[N_OBJECTS] = {NULL};
    memset(nb, 0, sizeof nb);
    Py_ssize_t width = 0;
    for (int i = 0; i < N_TABLES; i++)
        if (take(t, i, &nb[i]) < 0)
            goto fail;
    for (int i = 0; i < N_OBJECTS; i++) {
        objs[i] = PyObject_GetAttrString(t, OBJECT_NAMES[i]);
        if (!objs[i])
            goto fail;
        int ok = i == O_MLNX_FDR10 ? PySet_Check(objs[i]) : PyDict_Check(objs[i]);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "FastTables.%s: a %s wanted, got a %s", OBJECT_NAMES[i],
                         i == O_MLNX_FDR10 ? "set" : "dict", Py_TYPE(objs[i])->tp_name);
            goto fail;
        }
    }
    Py_ssize_t P = items(&nb[T_NODE_OF_PORT]), N = items(&nb[T_FIRST_PORT]), S = items(&nb[T_FDB_TOP]);
    if (check_lengths(nb, P, N, S, &width) < 0 || check_values(nb, P, N, S) < 0)
        goto fail;
    release_tables(L);
    memcpy(L->buf, nb, sizeof nb);
    Py_XSETREF(L->pkeys, objs[O_PKEYS]);
    Py_XSETREF(L->mlnx_ext, objs[O_MLNX_EXT]);
    Py_XSETREF(L->mlnx_fdr10, objs[O_MLNX_FDR10]);
    Py_CLEAR(L->seen_lft);                      /* run() checks against the state's arrays again */
    Py_CLEAR(L->seen_lid);
    L->n_ports = P;
    L->n_nodes = N;
    L->n_switches = S;
    L->lft_width = width;
    L->have_tables = 1;
    return 0;
fail:
    for (int i = 0; i < N_TABLES; i++)
        if (nb[i].obj)
            PyBuffer_Release(&nb[i]);
    for (int i = 0; i < N_OBJECTS; i++)
        Py_XDECREF(objs[i]);
    return -1;
}
