/*
 * ibsim.mad._fastpath: what the socket loop (_fastpath.c), the SMP answers
 * (_fastpath_smp.c) and the table install (_fastpath_tables.c) share: the
 * generated layout, the table indices and the Loop object.
 */
#ifndef IBSIM_FASTPATH_H
#define IBSIM_FASTPATH_H
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

#include "_fastpath_layout.h"   /* offsets, attribute IDs and fields, caps: generated from Python */

#define FRAME FRAME_SIZE
#define BATCH 16            /* datagrams read from one socket per readiness event */
#define MAX_FRAMES 256      /* datagrams handled per run() */
#define MAX_EVENTS 64

/* The buffers of a FastTables (ibsim/mad/fasttables.py), in its field order; TABLE_SPECS
 * (_fastpath_tables.c) gives each one's field name, item format and length. */
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
    T_LFT,            /* uint8 [switches][width], live */
    T_PI,             /* 64 bytes per port: stored PortInfo */
    T_NODE_INFO,      /* 64 bytes per port */
    T_NODE_DESC,      /* 64 bytes per node */
    T_SWITCH_INFO,    /* 64 bytes per switch */
    T_FDB_TOP,        /* int32 [switches] */
    N_TABLES
};

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

#define I32(L, t) ((const int32_t *)(L)->buf[t].buf)
#define U8(L, t) ((const unsigned char *)(L)->buf[t].buf)
#define U16(L, t) ((const uint16_t *)(L)->buf[t].buf)

/* an attribute field (the generated ib_field) of a big-endian buffer */
static inline uint64_t get_field(const unsigned char *buf, ib_field f)
{
    uint64_t v = 0;
    for (int i = 0; i < f.nbytes; i++)
        v = (v << 8) | buf[f.byte + i];
    return (v >> f.shift) & f.mask;
}

static inline void put_field(unsigned char *buf, ib_field f, uint64_t value)
{
    uint64_t v = 0;
    for (int i = 0; i < f.nbytes; i++)
        v = (v << 8) | buf[f.byte + i];
    v = (v & ~(f.mask << f.shift)) | ((value & f.mask) << f.shift);
    for (int i = f.nbytes - 1; i >= 0; i--, v >>= 8)
        buf[f.byte + i] = (unsigned char)(v & 0xFF);
}

/* answer a directed-route SMP Get in place (1), leave it to Python (0), or fail (-1) */
int fast_answer(Loop *L, int slot, Py_ssize_t src, unsigned char *b, int external);

/* Loop.tables(t): take and validate the buffers of a FastTables (_fastpath_tables.c) */
int install_tables(Loop *L, PyObject *t);
void release_tables(Loop *L);
/* the FastTables field names the C side reads, in order (exported as TABLE_FIELDS) */
PyObject *table_field_names(void);

#endif
