/*
 * Shared parts of ibsim's OpenSM PerfMgr event plugins (naive.c, batched.c):
 * the options string, the counter names, a (node GUID, port) hash map and the
 * per-sweep statistics file.  Header-only (static functions), included once
 * by each plugin.
 *
 * Metric names follow the monitoring benchmark's scheme:
 *   <prefix>.<node GUID, 16 lowercase hex>.p<port, 2 digits>.<counter>
 * with ibsim's counter names (ibsim.fabric.COUNTER_NAMES, same order here).
 *
 * Statistics: one JSON object per PerfMgr sweep, appended to the file named
 * by the "stats=" option and flushed per line.  A sweep is a run of
 * PORT_ERRORS / PORT_DATA_COUNTERS reports; a report after more than "gap"
 * seconds of silence starts the next one, and the previous sweep's line is
 * written then (the last one, and a {"final": true, ...} line, at delete()).
 */
#ifndef IBSIM_PLUGIN_COMMON_H
#define IBSIM_PLUGIN_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opensm/osm_config.h>
#include <opensm/osm_opensm.h>
#include <opensm/osm_event_plugin.h>
#include <opensm/osm_version.h>

/* The version string OpenSM compares with its own before it loads a plugin.
 * The build passes -DIBSIM_OSM_VERSION when the header has no OSM_VERSION. */
#ifndef IBSIM_OSM_VERSION
#ifdef OSM_VERSION
#define IBSIM_OSM_VERSION OSM_VERSION
#else
#error "no OSM_VERSION in opensm/osm_version.h: build with -DIBSIM_OSM_VERSION='\"OpenSM x.y.z\"'"
#endif
#endif

#define IBSIM_N_COUNTERS 21

/* ibsim.fabric.COUNTER_NAMES, in that order */
static const char *const ibsim_counter_names[IBSIM_N_COUNTERS] = {
	"symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors",
	"port_rcv_remote_physical_errors", "port_rcv_switch_relay_errors",
	"port_xmit_discards", "port_xmit_constraint_errors",
	"port_rcv_constraint_errors", "local_link_integrity_errors",
	"excessive_buffer_overrun_errors", "VL15_dropped", "port_xmit_data",
	"port_rcv_data", "port_xmit_packets", "port_rcv_packets", "port_xmit_wait",
	"unicast_xmit_packets", "unicast_rcv_packets", "multicast_xmit_packets",
	"multicast_rcv_packets",
};

#define IBSIM_N_PE 13
#define IBSIM_N_DC 8
/* counter rows of the values a PORT_ERRORS / PORT_DATA_COUNTERS event carries */
static const uint8_t ibsim_pe_rows[IBSIM_N_PE] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16 };
static const uint8_t ibsim_dc_rows[IBSIM_N_DC] = { 12, 13, 14, 15, 17, 18, 19, 20 };

static inline void ibsim_pe_values(const osm_epi_pe_event_t *e, uint64_t *v)
{
	v[0] = e->symbol_err_cnt;
	v[1] = e->link_err_recover;
	v[2] = e->link_downed;
	v[3] = e->rcv_err;
	v[4] = e->rcv_rem_phys_err;
	v[5] = e->rcv_switch_relay_err;
	v[6] = e->xmit_discards;
	v[7] = e->xmit_constraint_err;
	v[8] = e->rcv_constraint_err;
	v[9] = e->link_integrity;
	v[10] = e->buffer_overrun;
	v[11] = e->vl15_dropped;
	v[12] = e->xmit_wait;
}

static inline void ibsim_dc_values(const osm_epi_dc_event_t *e, uint64_t *v)
{
	v[0] = e->xmit_data;
	v[1] = e->rcv_data;
	v[2] = e->xmit_pkts;
	v[3] = e->rcv_pkts;
	v[4] = e->unicast_xmit_pkts;
	v[5] = e->unicast_rcv_pkts;
	v[6] = e->multicast_xmit_pkts;
	v[7] = e->multicast_rcv_pkts;
}

static inline double ibsim_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ options */
struct ibsim_opts {
	char host[64];
	int port;
	char prefix[64];
	char stats[1024];
	double gap;       /* s of silence that ends a sweep */
	int pickle;       /* proto=pickle (batched only) */
	long queue;       /* events the queue holds (batched only) */
	long batch;       /* events per send (batched only) */
	double flush_s;   /* bound on delete()'s flush (batched only) */
};

/* Parse "key=value key=value ..."; on an unknown key or bad value write a
 * message to err and return -1. */
static int ibsim_parse_opts(const char *s, struct ibsim_opts *o, char *err, size_t errlen)
{
	char buf[2048], *save = NULL, *tok;

	snprintf(o->host, sizeof(o->host), "127.0.0.1");
	o->port = 2003;
	snprintf(o->prefix, sizeof(o->prefix), "ib");
	o->stats[0] = '\0';
	o->gap = 2.0;
	o->pickle = 0;
	o->queue = 200000;
	o->batch = 5000;
	o->flush_s = 10.0;
	if (!s)
		return 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		char *val = strchr(tok, '=');
		char *end = NULL;
		if (!val) {
			snprintf(err, errlen, "option '%s' is not key=value", tok);
			return -1;
		}
		*val++ = '\0';
		if (!strcmp(tok, "host"))
			snprintf(o->host, sizeof(o->host), "%s", val);
		else if (!strcmp(tok, "port"))
			o->port = (int)strtol(val, &end, 10);
		else if (!strcmp(tok, "prefix"))
			snprintf(o->prefix, sizeof(o->prefix), "%s", val);
		else if (!strcmp(tok, "stats"))
			snprintf(o->stats, sizeof(o->stats), "%s", val);
		else if (!strcmp(tok, "gap"))
			o->gap = strtod(val, &end);
		else if (!strcmp(tok, "queue"))
			o->queue = strtol(val, &end, 10);
		else if (!strcmp(tok, "batch"))
			o->batch = strtol(val, &end, 10);
		else if (!strcmp(tok, "flush"))
			o->flush_s = strtod(val, &end);
		else if (!strcmp(tok, "proto")) {
			if (!strcmp(val, "pickle"))
				o->pickle = 1;
			else if (!strcmp(val, "plaintext"))
				o->pickle = 0;
			else {
				snprintf(err, errlen, "proto=%s: use plaintext or pickle", val);
				return -1;
			}
		} else {
			snprintf(err, errlen, "unknown option '%s' (host port prefix stats gap proto queue batch flush)", tok);
			return -1;
		}
		if (end && (*end || end == val)) {
			snprintf(err, errlen, "option %s=%s is not a number", tok, val);
			return -1;
		}
		end = NULL;
	}
	if (o->port <= 0 || o->port > 65535 || o->gap <= 0 || o->queue <= 0 || o->batch <= 0 || o->flush_s < 0) {
		snprintf(err, errlen, "option out of range (port 1-65535, gap > 0, queue > 0, batch > 0, flush >= 0)");
		return -1;
	}
	return 0;
}

/* -------------------------------------------------- (node GUID, port) map */
/* Open addressing, linear probing.  A slot belongs to the map when its
 * generation equals the map's: bumping the generation empties the map in
 * O(1) (the per-sweep set of ports); a map never bumped keeps its entries. */
struct ibsim_pmap {
	uint64_t *guid;
	uint32_t *gen;
	uint32_t *val;
	uint16_t *port;
	size_t cap, n;
	uint32_t cur;
};

static inline size_t ibsim_hash(uint64_t guid, unsigned port)
{
	uint64_t h = (guid ^ ((uint64_t)port << 48)) * 0x9E3779B97F4A7C15ull;
	return (size_t)(h ^ (h >> 29));
}

static int ibsim_pmap_init(struct ibsim_pmap *m, size_t cap)
{
	memset(m, 0, sizeof(*m));
	m->cap = cap;
	m->cur = 1;
	m->guid = calloc(cap, sizeof(*m->guid));
	m->gen = calloc(cap, sizeof(*m->gen));
	m->val = calloc(cap, sizeof(*m->val));
	m->port = calloc(cap, sizeof(*m->port));
	return (m->guid && m->gen && m->val && m->port) ? 0 : -1;
}

static void ibsim_pmap_free(struct ibsim_pmap *m)
{
	free(m->guid);
	free(m->gen);
	free(m->val);
	free(m->port);
	memset(m, 0, sizeof(*m));
}

/* Empty the map (O(1)). */
static inline void ibsim_pmap_clear(struct ibsim_pmap *m)
{
	m->n = 0;
	if (++m->cur == 0) {       /* wrapped: really clear */
		memset(m->gen, 0, m->cap * sizeof(*m->gen));
		m->cur = 1;
	}
}

static inline size_t ibsim_pmap_slot(const struct ibsim_pmap *m, uint64_t guid, unsigned port)
{
	size_t i = ibsim_hash(guid, port) & (m->cap - 1);
	while (m->gen[i] == m->cur && !(m->guid[i] == guid && m->port[i] == port))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int ibsim_pmap_grow(struct ibsim_pmap *m)
{
	struct ibsim_pmap b;
	size_t i;
	if (ibsim_pmap_init(&b, m->cap * 2))
		return -1;
	for (i = 0; i < m->cap; i++)
		if (m->gen[i] == m->cur) {
			size_t j = ibsim_pmap_slot(&b, m->guid[i], m->port[i]);
			b.gen[j] = b.cur;
			b.guid[j] = m->guid[i];
			b.port[j] = m->port[i];
			b.val[j] = m->val[i];
			b.n++;
		}
	ibsim_pmap_free(m);
	*m = b;
	return 0;
}

/* The value stored for (guid, port), or insert `val` for it: returns the
 * stored value, *added = 1 when it was inserted.  Capacity is a power of 2;
 * returns UINT32_MAX when out of memory. */
static uint32_t ibsim_pmap_get_or_add(struct ibsim_pmap *m, uint64_t guid, unsigned port, uint32_t val, int *added)
{
	size_t i;
	*added = 0;
	if ((m->n + 1) * 2 > m->cap && ibsim_pmap_grow(m))
		return UINT32_MAX;
	i = ibsim_pmap_slot(m, guid, port);
	if (m->gen[i] == m->cur)
		return m->val[i];
	m->gen[i] = m->cur;
	m->guid[i] = guid;
	m->port[i] = (uint16_t)port;
	m->val[i] = val;
	m->n++;
	*added = 1;
	return val;
}

/* ------------------------------------------------------- sweep statistics */
enum { IBSIM_EV_PE = 0, IBSIM_EV_DC = 1, IBSIM_EV_TRAP = 3 };

struct ibsim_stats;
/* Writes plugin-specific ', "key": value' pairs of a line (lock held). */
typedef void (*ibsim_extra_fn)(void *ctx, FILE *fp, int final);

struct ibsim_stats {
	pthread_mutex_t mu;
	FILE *fp;
	double gap;
	const char *values;       /* "delta" or "cumulative" */
	ibsim_extra_fn extra;
	void *ctx;
	/* the current sweep (0: none yet) */
	long sweep;
	double t0, t1;
	long dc, pe, traps;
	struct ibsim_pmap ports;
	/* totals the plugin adds to (atomics: any thread) */
	uint64_t points, dropped, send_errors;
	/* totals at the last line written */
	uint64_t points_at, dropped_at, send_errors_at;
	long tot_dc, tot_pe, tot_traps;
};

static int ibsim_stats_open(struct ibsim_stats *st, const char *path, double gap, const char *values,
			    ibsim_extra_fn extra, void *ctx)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->mu, NULL);
	st->gap = gap;
	st->values = values;
	st->extra = extra;
	st->ctx = ctx;
	if (ibsim_pmap_init(&st->ports, 4096))
		return -1;
	if (path && *path) {
		st->fp = fopen(path, "a");
		if (!st->fp)
			return -1;
	}
	return 0;
}

#define IBSIM_ADD(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define IBSIM_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* One line for the current sweep (lock held). */
static void ibsim_stats_line(struct ibsim_stats *st)
{
	uint64_t points = IBSIM_GET(st->points), dropped = IBSIM_GET(st->dropped);
	uint64_t errs = IBSIM_GET(st->send_errors);
	if (st->fp && st->sweep > 0) {
		fprintf(st->fp, "{\"sweep\": %ld, \"t0\": %.6f, \"t1\": %.6f, \"ports\": %zu, \"dc\": %ld, "
			"\"pe\": %ld, \"traps\": %ld, \"points\": %" PRIu64 ", \"dropped\": %" PRIu64
			", \"send_errors\": %" PRIu64, st->sweep, st->t0, st->t1, st->ports.n, st->dc,
			st->pe, st->traps, points - st->points_at, dropped - st->dropped_at,
			errs - st->send_errors_at);
		if (st->extra)
			st->extra(st->ctx, st->fp, 0);
		fputs("}\n", st->fp);
		fflush(st->fp);
	}
	st->points_at = points;
	st->dropped_at = dropped;
	st->send_errors_at = errs;
}

/* Note one report (cheap: a clock read, a few adds, one hash probe for DC). */
static void ibsim_stats_event(struct ibsim_stats *st, int kind, uint64_t guid, unsigned port)
{
	double now = ibsim_now();
	int added;
	pthread_mutex_lock(&st->mu);
	if (kind == IBSIM_EV_TRAP) {       /* traps are not part of a PerfMgr sweep */
		st->traps++;
		st->tot_traps++;
		pthread_mutex_unlock(&st->mu);
		return;
	}
	if (st->sweep == 0 || now - st->t1 > st->gap) {
		ibsim_stats_line(st);
		st->sweep++;
		st->t0 = now;
		st->dc = st->pe = st->traps = 0;
		ibsim_pmap_clear(&st->ports);
	}
	st->t1 = now;
	if (kind == IBSIM_EV_DC) {
		st->dc++;
		st->tot_dc++;
		ibsim_pmap_get_or_add(&st->ports, guid, port, 0, &added);
	} else {
		st->pe++;
		st->tot_pe++;
	}
	pthread_mutex_unlock(&st->mu);
}

/* The last sweep's line and the final line; closes the file. */
static void ibsim_stats_close(struct ibsim_stats *st)
{
	pthread_mutex_lock(&st->mu);
	ibsim_stats_line(st);
	if (st->fp) {
		fprintf(st->fp, "{\"final\": true, \"values\": \"%s\", \"sweeps\": %ld, \"dc\": %ld, \"pe\": %ld, "
			"\"traps\": %ld, \"points\": %" PRIu64 ", \"dropped\": %" PRIu64 ", \"send_errors\": %"
			PRIu64, st->values, st->sweep, st->tot_dc, st->tot_pe, st->tot_traps,
			IBSIM_GET(st->points), IBSIM_GET(st->dropped), IBSIM_GET(st->send_errors));
		if (st->extra)
			st->extra(st->ctx, st->fp, 1);
		fputs("}\n", st->fp);
		fclose(st->fp);
		st->fp = NULL;
	}
	pthread_mutex_unlock(&st->mu);
	ibsim_pmap_free(&st->ports);
	pthread_mutex_destroy(&st->mu);
}

#endif /* IBSIM_PLUGIN_COMMON_H */
