/*
 * ibsim "batched" OpenSM event plugin: the well-built counterpart of naive.c.
 *
 * report() only copies the event (GUID, port, kind, values, time) into a
 * bounded in-memory queue under a mutex and returns: it never blocks on the
 * network, and when the queue is full the event is dropped and counted.
 * The plugin's own thread drains the queue in batches, keeps per-port
 * running totals of PerfMgr's deltas (so carbon receives cumulative
 * counters: "values": "cumulative") and sends them over ONE TCP connection
 * to carbon, plaintext or pickle protocol.
 *
 * A node that comes back: when OpenSM's heavy sweep no longer finds a node,
 * PerfMgr's next sweep drops it and (perfmgr_rm_nodes, the default) deletes
 * its DB entry; when it is found again a new entry is made whose "previous"
 * readings are zero and timed at the entry's creation (its last_reset), so
 * PerfMgr's first reading of each port is the absolute counter, not a delta.
 * report() recognises that reading in PerfMgr's DB (it runs inside
 * perfmgr_db_add_*_reading with the DB's lock held, so the entry is stable):
 * the previous reading was zero and timed at last_reset.  That port's totals
 * then restart from the absolute values instead of adding them.  A counter
 * clear (PerfMgr's overflow clear, an out-of-band clear) zeroes "previous"
 * at another time and stays a delta added to the running sum.  When carbon goes away it
 * reconnects with exponential backoff and re-sends the batch that failed
 * (at-least-once: carbon keeps the last value of a (metric, time), so a
 * repeat is harmless).  TRAP events become
 *   <prefix>.traps.trap<number>.lid<issuer LID> <count> <ts>
 * (vendor traps: trap<"v"device id>), the count of such notices so far.
 * delete() flushes the queue and joins the thread, waiting at most flush=
 * seconds for carbon.
 *
 * Options (event_plugin_options): host= port= (carbon's line or pickle
 * port) prefix= stats= gap= proto=plaintext|pickle queue= batch= flush=.
 * Statistics: see common.h; this plugin adds "queue_max" (the queue's high
 * water mark in the sweep) and "connects" (connections made to carbon so far).
 */
#include "common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

struct bev {                  /* one queued event */
	uint64_t guid;
	uint64_t v[IBSIM_N_PE];
	int64_t ts;
	uint16_t trap, lid;       /* TRAP: trap number (or device id), issuer LID */
	uint8_t port, kind, generic;
	uint8_t absolute;         /* PE/DC: PerfMgr's first reading of a new DB entry */
};

#define FRAME_MAX (512 * 1024) /* pickle frames stay well below carbon's 1 MiB limit */

struct buf {
	char *p;
	size_t n, cap;
};

struct batched {
	osm_opensm_t *osm;
	struct ibsim_opts o;
	struct sockaddr_in dst;
	struct ibsim_stats st;
	/* the queue (mu) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct bev *q;
	size_t cap, head, n, high, high_all;
	int stopping;
	double deadline;          /* when stopping: give up on carbon after this */
	pthread_t th;
	int started;
	/* the sender thread's own */
	struct bev *work;
	struct ibsim_pmap port_idx;
	uint64_t (*totals)[IBSIM_N_COUNTERS];
	size_t ntotals, cap_totals;
	struct ibsim_pmap trap_idx;
	uint64_t *trap_count;
	size_t ntraps, cap_traps;
	struct buf out;
	size_t frame_at;          /* pickle: offset of the open frame's header */
	int fd;
	uint64_t connects;          /* connections made to carbon */
};

/* ------------------------------------------------------------ payload */
static int buf_reserve(struct buf *b, size_t more)
{
	if (b->n + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 65536;
	while (cap < b->n + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static inline void put(struct buf *b, const void *d, size_t n)
{
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static inline void put_u32le(struct buf *b, uint32_t v)
{
	unsigned char x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
	put(b, x, 4);
}

/* Pickle (protocol 2) frames for carbon's pickle receiver: a 4-byte
 * big-endian length, then [(metric, (ts, value)), ...]. */
static void frame_open(struct batched *p)
{
	static const char head[] = { (char)0x80, 2, ']', '(' };   /* PROTO 2, EMPTY_LIST, MARK */
	p->frame_at = p->out.n;
	p->out.n += 4;
	put(&p->out, head, sizeof(head));
}

static void frame_close(struct batched *p)
{
	static const char tail[] = { 'e', '.' };                  /* APPENDS, STOP */
	uint32_t len;
	put(&p->out, tail, sizeof(tail));
	len = (uint32_t)(p->out.n - p->frame_at - 4);
	p->out.p[p->frame_at] = (char)(len >> 24);
	p->out.p[p->frame_at + 1] = (char)(len >> 16);
	p->out.p[p->frame_at + 2] = (char)(len >> 8);
	p->out.p[p->frame_at + 3] = (char)len;
}

/* One point; `name` is the metric name, ts unix seconds. */
static int emit(struct batched *p, const char *name, size_t nlen, uint64_t value, int64_t ts)
{
	if (buf_reserve(&p->out, nlen + 64))
		return -1;
	if (!p->o.pickle) {
		p->out.n += (size_t)sprintf(p->out.p + p->out.n, "%.*s %" PRIu64 " %" PRId64 "\n", (int)nlen, name,
					    value, ts);
		return 0;
	}
	if (p->out.n - p->frame_at > FRAME_MAX) {
		frame_close(p);
		frame_open(p);
	}
	unsigned char num[10];
	int k = 0;
	put(&p->out, "X", 1);                                     /* BINUNICODE */
	put_u32le(&p->out, (uint32_t)nlen);
	put(&p->out, name, nlen);
	put(&p->out, "J", 1);                                     /* BININT (ts) */
	put_u32le(&p->out, (uint32_t)ts);
	for (uint64_t v = value; v; v >>= 8)                       /* LONG1: little-endian two's complement */
		num[k++] = v & 0xff;
	if (k && (num[k - 1] & 0x80))
		num[k++] = 0;
	unsigned char op[2] = { 0x8a, (unsigned char)k };
	put(&p->out, op, 2);
	put(&p->out, num, (size_t)k);
	put(&p->out, "\x86\x86", 2);                              /* TUPLE2 (ts, v), TUPLE2 (name, .) */
	return 0;
}

/* Index of the running totals of (guid, port), created at zero. */
static long totals_of(struct batched *p, uint64_t guid, unsigned port)
{
	int added;
	uint32_t i = ibsim_pmap_get_or_add(&p->port_idx, guid, port, (uint32_t)p->ntotals, &added);
	if (i == UINT32_MAX)
		return -1;
	if (added) {
		if (p->ntotals == p->cap_totals) {
			size_t cap = p->cap_totals ? 2 * p->cap_totals : 1024;
			void *t = realloc(p->totals, cap * sizeof(*p->totals));
			if (!t)
				return -1;
			p->totals = t;
			p->cap_totals = cap;
		}
		memset(p->totals[i], 0, sizeof(*p->totals));
		p->ntotals++;
	}
	return i;
}

static uint64_t trap_seen(struct batched *p, const struct bev *e)
{
	int added;
	uint64_t key = ((uint64_t)e->generic << 32) | ((uint64_t)e->trap << 16) | e->lid;
	uint32_t i = ibsim_pmap_get_or_add(&p->trap_idx, key, 0, (uint32_t)p->ntraps, &added);
	if (i == UINT32_MAX)
		return 0;
	if (added) {
		if (p->ntraps == p->cap_traps) {
			size_t cap = p->cap_traps ? 2 * p->cap_traps : 64;
			uint64_t *t = realloc(p->trap_count, cap * sizeof(*t));
			if (!t)
				return 0;
			p->trap_count = t;
			p->cap_traps = cap;
		}
		p->trap_count[i] = 0;
		p->ntraps++;
	}
	return ++p->trap_count[i];
}

/* Turn k events into the payload (p->out); returns the number of points. */
static uint64_t build(struct batched *p, const struct bev *ev, size_t k)
{
	char name[256];
	uint64_t points = 0;
	p->out.n = 0;
	if (p->o.pickle) {
		if (buf_reserve(&p->out, 64))
			return 0;
		frame_open(p);
	}
	for (size_t j = 0; j < k; j++) {
		const struct bev *e = &ev[j];
		if (e->kind == IBSIM_EV_TRAP) {
			int n = e->generic ? snprintf(name, sizeof(name), "%s.traps.trap%u.lid%u", p->o.prefix, e->trap, e->lid)
					   : snprintf(name, sizeof(name), "%s.traps.trapv%u.lid%u", p->o.prefix, e->trap, e->lid);
			if (emit(p, name, (size_t)n, trap_seen(p, e), e->ts) == 0)
				points++;
			continue;
		}
		long t = totals_of(p, e->guid, e->port);
		if (t < 0)
			continue;
		const uint8_t *rows = e->kind == IBSIM_EV_PE ? ibsim_pe_rows : ibsim_dc_rows;
		int nv = e->kind == IBSIM_EV_PE ? IBSIM_N_PE : IBSIM_N_DC;
		int base = snprintf(name, sizeof(name), "%s.%016" PRIx64 ".p%02u.", p->o.prefix, e->guid, e->port);
		for (int i = 0; i < nv; i++) {
			uint64_t *tot = &p->totals[t][rows[i]];
			*tot = e->absolute ? e->v[i] : *tot + e->v[i];
			int n = base + snprintf(name + base, sizeof(name) - (size_t)base, "%s", ibsim_counter_names[rows[i]]);
			if (emit(p, name, (size_t)n, *tot, e->ts) == 0)
				points++;
		}
	}
	if (p->o.pickle)
		frame_close(p);
	return points;
}

/* ------------------------------------------------------------ carbon */
static int connect_carbon(struct batched *p)
{
	struct pollfd pf;
	struct timeval tv = { 5, 0 };
	int one = 1, err = 0, fd;
	socklen_t len = sizeof(err);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&p->dst, sizeof(p->dst)) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		pf.fd = fd;
		pf.events = POLLOUT;
		if (poll(&pf, 1, 2000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
			goto fail;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  /* bounded: never stuck on carbon */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return -1;
}

/* The connection is gone when carbon (which never writes to us) closed it. */
static int connection_dead(int fd)
{
	struct pollfd pf = { fd, POLLIN | POLLRDHUP, 0 };
	return poll(&pf, 1, 0) != 0;
}

static int send_all(int fd, const char *d, size_t n)
{
	while (n) {
		ssize_t r = send(fd, d, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		d += r;
		n -= (size_t)r;
	}
	return 0;
}

static int past_deadline(struct batched *p)
{
	int give_up;
	pthread_mutex_lock(&p->mu);
	give_up = p->stopping && ibsim_now() > p->deadline;
	pthread_mutex_unlock(&p->mu);
	return give_up;
}

/* Send the payload, reconnecting with backoff until it went out (or, when
 * stopping, until the flush deadline: then its points count as dropped). */
static void deliver(struct batched *p, uint64_t points)
{
	double backoff = 0.05;
	for (;;) {
		if (p->fd >= 0 && connection_dead(p->fd)) {
			close(p->fd);
			p->fd = -1;
		}
		if (p->fd < 0) {
			p->fd = connect_carbon(p);
			if (p->fd >= 0)
				IBSIM_ADD(p->connects, 1);
		}
		if (p->fd >= 0) {
			if (send_all(p->fd, p->out.p, p->out.n) == 0) {
				IBSIM_ADD(p->st.points, points);
				return;
			}
			close(p->fd);
			p->fd = -1;
		}
		IBSIM_ADD(p->st.send_errors, 1);
		if (past_deadline(p)) {
			IBSIM_ADD(p->st.dropped, points);
			return;
		}
		struct timespec ts = { (time_t)backoff, (long)((backoff - (time_t)backoff) * 1e9) };
		nanosleep(&ts, NULL);
		backoff = backoff * 2 > 5.0 ? 5.0 : backoff * 2;
	}
}

static void *sender(void *arg)
{
	struct batched *p = arg;
	for (;;) {
		size_t k, first;
		pthread_mutex_lock(&p->mu);
		while (p->n == 0 && !p->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		}
		if (p->n == 0) {                         /* stopping, all sent */
			pthread_mutex_unlock(&p->mu);
			break;
		}
		k = p->n < (size_t)p->o.batch ? p->n : (size_t)p->o.batch;
		first = p->cap - p->head < k ? p->cap - p->head : k;
		memcpy(p->work, p->q + p->head, first * sizeof(*p->q));
		memcpy(p->work + first, p->q, (k - first) * sizeof(*p->q));
		p->head = (p->head + k) % p->cap;
		p->n -= k;
		pthread_mutex_unlock(&p->mu);
		uint64_t points = build(p, p->work, k);
		if (p->out.n)
			deliver(p, points);
	}
	return NULL;
}

/* ------------------------------------------------------------ plugin */
static void batched_extra(void *ctx, FILE *fp, int final)
{
	struct batched *p = ctx;
	size_t high;
	pthread_mutex_lock(&p->mu);
	high = final ? p->high_all : p->high;
	if (!final)
		p->high = p->n;
	pthread_mutex_unlock(&p->mu);
	fprintf(fp, ", \"queue_max\": %zu, \"connects\": %" PRIu64, high,
		IBSIM_GET(p->connects));
}

static void batched_free(struct batched *p)
{
	free(p->q);
	free(p->work);
	free(p->totals);
	free(p->trap_count);
	free(p->out.p);
	ibsim_pmap_free(&p->port_idx);
	ibsim_pmap_free(&p->trap_idx);
	free(p);
}

static void *batched_create(struct osm_opensm *osm)
{
	struct batched *p = calloc(1, sizeof(*p));
	char err[256];
	if (!p)
		return NULL;
	p->osm = osm;
	p->fd = -1;
	if (ibsim_parse_opts(osm->subn.opt.event_plugin_options, &p->o, err, sizeof(err))) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim batched plugin: %s\n", err);
		free(p);
		return NULL;
	}
	p->dst.sin_family = AF_INET;
	p->dst.sin_port = htons((uint16_t)p->o.port);
	if (inet_pton(AF_INET, p->o.host, &p->dst.sin_addr) != 1) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim batched plugin: host=%s is not an IPv4 address\n", p->o.host);
		free(p);
		return NULL;
	}
	p->cap = (size_t)p->o.queue;
	p->q = malloc(p->cap * sizeof(*p->q));
	p->work = malloc((size_t)p->o.batch * sizeof(*p->work));
	if (!p->q || !p->work || ibsim_pmap_init(&p->port_idx, 4096) || ibsim_pmap_init(&p->trap_idx, 64)) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim batched plugin: out of memory (queue=%ld)\n", p->o.queue);
		batched_free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (ibsim_stats_open(&p->st, p->o.stats, p->o.gap, "cumulative", batched_extra, p)) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim batched plugin: cannot open stats=%s: %s\n", p->o.stats,
			strerror(errno));
		batched_free(p);
		return NULL;
	}
	if (pthread_create(&p->th, NULL, sender, p)) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim batched plugin: cannot start its thread\n");
		ibsim_stats_close(&p->st);
		batched_free(p);
		return NULL;
	}
	p->started = 1;
	OSM_LOG(&osm->log, OSM_LOG_INFO, "ibsim event plugin batched loaded: tcp %s:%d %s prefix %s\n",
		p->o.host, p->o.port, p->o.pickle ? "pickle" : "plaintext", p->o.prefix);
	return p;
}

static void batched_delete(void *data)
{
	struct batched *p = data;
	struct timespec until;
	double t;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	p->deadline = ibsim_now() + p->o.flush_s;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	/* the thread gives up on carbon at the deadline; one send may take 5 s more */
	t = p->deadline + 8.0;
	until.tv_sec = (time_t)t;
	until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
	if (pthread_timedjoin_np(p->th, NULL, &until)) {
		OSM_LOG(&p->osm->log, OSM_LOG_ERROR, "ibsim batched plugin: sender thread did not stop; leaking it\n");
		return;                              /* it still uses p: never free it under its feet */
	}
	if (p->fd >= 0)
		close(p->fd);
	ibsim_stats_close(&p->st);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	batched_free(p);
}

/* PerfMgr's DB entry of (guid, port), or NULL.  Only from report() of a
 * PE/DC event: PerfMgr holds the DB's lock (exclusive) while it reports. */
static const db_port_t *db_port(struct batched *p, uint64_t guid, unsigned port)
{
	perfmgr_db_t *db = p->osm->perfmgr.db;
	cl_map_item_t *it;
	const db_node_t *n;
	if (!db)
		return NULL;
	it = cl_qmap_get(&db->pc_data, guid);
	if (it == cl_qmap_end(&db->pc_data))
		return NULL;
	n = (const db_node_t *)it;
	return port < n->num_ports ? &n->ports[port] : NULL;
}

/* Is this PerfMgr's first reading of the port since its DB entry was made?
 * PerfMgr has already stored the reading as "previous" when it reports;
 * the one before it was zero (delta == reading) and timed at last_reset.
 * Cheap: one map lookup and a few compares. */
static int first_reading(struct batched *p, int kind, const void *ev)
{
	if (kind == IBSIM_EV_DC) {
		const osm_epi_dc_event_t *e = ev;
		const db_port_t *dp = db_port(p, e->port_id.node_guid, e->port_id.port_num);
		const perfmgr_db_data_cnt_reading_t *r = dp ? &dp->dc_previous : NULL;
		/* unicast/multicast are not set in the event when the port lacks them */
		return r && r->time - e->time_diff_s == dp->last_reset && e->xmit_data == r->xmit_data &&
		       e->rcv_data == r->rcv_data && e->xmit_pkts == r->xmit_pkts && e->rcv_pkts == r->rcv_pkts;
	} else {
		const osm_epi_pe_event_t *e = ev;
		const db_port_t *dp = db_port(p, e->port_id.node_guid, e->port_id.port_num);
		const perfmgr_db_err_reading_t *r = dp ? &dp->err_previous : NULL;
		return r && r->time - e->time_diff_s == dp->last_reset && e->symbol_err_cnt == r->symbol_err_cnt &&
		       e->link_err_recover == r->link_err_recover && e->link_downed == r->link_downed &&
		       e->rcv_err == r->rcv_err && e->rcv_rem_phys_err == r->rcv_rem_phys_err &&
		       e->rcv_switch_relay_err == r->rcv_switch_relay_err && e->xmit_discards == r->xmit_discards &&
		       e->xmit_constraint_err == r->xmit_constraint_err &&
		       e->rcv_constraint_err == r->rcv_constraint_err && e->link_integrity == r->link_integrity &&
		       e->buffer_overrun == r->buffer_overrun && e->vl15_dropped == r->vl15_dropped &&
		       e->xmit_wait == r->xmit_wait;
	}
}

static void batched_report(void *data, osm_epi_event_id_t id, void *ev)
{
	struct batched *p = data;
	struct bev *e;
	const osm_epi_port_id_t *pid = NULL;
	int kind, points;
	switch (id) {
	case OSM_EVENT_ID_PORT_ERRORS:
		kind = IBSIM_EV_PE;
		points = IBSIM_N_PE;
		pid = &((const osm_epi_pe_event_t *)ev)->port_id;
		break;
	case OSM_EVENT_ID_PORT_DATA_COUNTERS:
		kind = IBSIM_EV_DC;
		points = IBSIM_N_DC;
		pid = &((const osm_epi_dc_event_t *)ev)->port_id;
		break;
	case OSM_EVENT_ID_TRAP:
		kind = IBSIM_EV_TRAP;
		points = 1;
		break;
	default:
		return;
	}
	ibsim_stats_event(&p->st, kind, pid ? pid->node_guid : 0, pid ? pid->port_num : 0);
	int absolute = kind != IBSIM_EV_TRAP && first_reading(p, kind, ev);
	int64_t ts = (int64_t)time(NULL);
	pthread_mutex_lock(&p->mu);
	if (p->n == p->cap) {
		pthread_mutex_unlock(&p->mu);
		IBSIM_ADD(p->st.dropped, points);
		return;
	}
	e = &p->q[(p->head + p->n) % p->cap];
	e->kind = (uint8_t)kind;
	e->absolute = (uint8_t)absolute;
	e->ts = ts;
	if (kind == IBSIM_EV_TRAP) {
		const ib_mad_notice_attr_t *ntc = ev;
		e->generic = ib_notice_is_generic(ntc) ? 1 : 0;
		e->trap = cl_ntoh16(e->generic ? ntc->g_or_v.generic.trap_num : ntc->g_or_v.vend.dev_id);
		e->lid = cl_ntoh16(ntc->issuer_lid);
		e->guid = 0;
		e->port = 0;
	} else {
		e->guid = pid->node_guid;
		e->port = pid->port_num;
		if (kind == IBSIM_EV_PE)
			ibsim_pe_values(ev, e->v);
		else
			ibsim_dc_values(ev, e->v);
	}
	if (p->n++ == 0)
		pthread_cond_signal(&p->cv);         /* the thread waits only on an empty queue */
	if (p->n > p->high) {
		p->high = p->n;
		if (p->n > p->high_all)
			p->high_all = p->n;
	}
	pthread_mutex_unlock(&p->mu);
}

osm_event_plugin_t osm_event_plugin = {
	.osm_version = IBSIM_OSM_VERSION,
	.create = batched_create,
	.delete = batched_delete,
	.report = batched_report,
};
