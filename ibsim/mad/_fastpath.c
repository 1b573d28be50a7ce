/*
 * ibsim.mad._fastpath: the MAD server's socket loop and its common case in C.
 *
 * Python keeps every protocol decision (ibsim/mad/dispatch.py). This module
 * only makes the hot path cheap:
 *
 *   - Loop.run() waits in epoll_wait and reads the ready datagrams with the
 *     GIL released, so the tick thread and OpenSM's threads run meanwhile;
 *   - the most frequent request of discovery, a directed-route SMP Get of
 *     NodeInfo, NodeDescription, PortInfo, SwitchInfo, LinearForwardingTable,
 *     P_KeyTable or MLNX ExtendedPortInfo that reaches its port, is answered here from the
 *     same tables the Python handlers read (FabricView), byte for byte as
 *     Dispatcher.frame would answer it (tests/mad/test_fastpath.py checks
 *     that on every case);
 *   - everything else (Sets, LID routing, PerfMgt, SA, errors, bounces,
 *     control messages, traps) goes back to Python unchanged.
 *
 * Files: _fastpath_smp.c (the SMP answers), _fastpath_tables.c (Loop.tables: the install and
 * checks of a FastTables), _fastpath.h (shared), _fastpath_layout.h (frame offsets, attribute
 * IDs and fields, caps: generated from ibsim/mad/codec.py by `python -m ibsim.mad.cheader`;
 * never edited by hand, tests/mad/test_cheader.py checks it and the build against Python).
 *
 * Tables come as one ibsim.mad.fasttables.FastTables, read by field name; its buffers (numpy
 * arrays, bytearrays) are borrowed, and checked once when installed (formats, lengths, the
 * values used as indices), so the per-MAD path only bounds-checks what it reads from the wire.
 * The fast path runs with the GIL and the simulation's lock held, so it sees the state between
 * two ticks, like the Python path.
 *
 * Serving another hot directed-route Get here touches:
 *   1. _fastpath_smp.c: a `case ATTR_...:` in fast_answer() filling `data` from the tables (its
 *      ID and fields are in _fastpath_layout.h when codec.py has them; a new layout or constant
 *      is listed in ibsim/mad/cheader.py and the header regenerated);
 *   2. only for state no table holds yet: a FastTables field (ibsim/mad/fasttables.py), its
 *      T_ index (_fastpath.h) and TABLE_SPECS row (_fastpath_tables.c), and its buffer in
 *      FabricView.fast_tables (ibsim/mad/view.py);
 *   3. tests/mad/test_fastpath.py: the attribute in GETS (C answers compared byte for byte
 *      with the Python handler's).
 */
#include "_fastpath.h"

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
    L->state = PyObject_GetAttrString(sim, "state");   /* the simulation's live FabricState */
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

/* tables(t): install the FastTables t (checked once, in _fastpath_tables.c) */
static PyObject *Loop_tables(Loop *L, PyObject *t)
{
    if (install_tables(L, t) < 0)
        return NULL;
    Py_RETURN_NONE;
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
    {"tables", (PyCFunction)Loop_tables, METH_O, "tables(t): install a FastTables (ibsim.mad.fasttables), checked once."},
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

static int add_value(PyObject *d, const char *name, PyObject *v)
{
    int r = v ? PyDict_SetItemString(d, name, v) : -1;
    Py_XDECREF(v);
    return r;
}

/* LAYOUT: every constant and attribute field of _fastpath_layout.h as compiled in, for
 * tests/mad/test_cheader.py to compare with ibsim.mad.cheader.values() (a stale build shows) */
static PyObject *layout_dict(void)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
#define ADD_CONSTANT(n)                                                                                     \
    if (add_value(d, #n, PyLong_FromLongLong(n)) < 0)                                                       \
        goto fail;
#define ADD_FIELD(n)                                                                                        \
    if (add_value(d, #n, Py_BuildValue("(iiiK)", n.byte, n.nbytes, n.shift, (unsigned long long)n.mask)) < 0) \
        goto fail;
    IBSIM_LAYOUT_CONSTANTS(ADD_CONSTANT)
    IBSIM_LAYOUT_FIELDS(ADD_FIELD)
#undef ADD_CONSTANT
#undef ADD_FIELD
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* PyModule_AddObjectRef that consumes obj (PyModule_Add of Python 3.13) */
static int add_owned(PyObject *m, const char *name, PyObject *obj)
{
    if (!obj)
        return -1;
    int r = PyModule_AddObjectRef(m, name, obj);
    Py_DECREF(obj);
    return r;
}

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&LoopType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Loop", (PyObject *)&LoopType) < 0 ||
        PyModule_AddIntConstant(m, "FRAME", FRAME) < 0 || add_owned(m, "LAYOUT", layout_dict()) < 0 ||
        add_owned(m, "TABLE_FIELDS", table_field_names()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
