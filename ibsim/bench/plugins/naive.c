/*
 * ibsim "naive" OpenSM event plugin: a re-creation of a 2014 design, kept
 * deliberately as it was, to measure what it costs.
 *
 * On every PORT_ERRORS and PORT_DATA_COUNTERS event, synchronously inside
 * report() (so in OpenSM's thread, with PerfMgr's DB lock held):
 *   - compile a regular expression on the node name (regcomp/regfree) to take
 *     the host part of it (the original put it into the metric name; the
 *     benchmark's names use the GUID, the cost stays);
 *   - open a NEW UDP socket;
 *   - format plaintext Graphite lines
 *       <prefix>.<guid16hex>.p<NN>.<counter> <value> <ts>
 *     with each value converted to a C int, as the original's "%d" did
 *     (values above 2^31 wrap);
 *   - sendto() carbon's UDP line receiver;
 *   - call shutdown() and never close(): one descriptor leaks per event, until
 *     OpenSM runs out of descriptors (EMFILE) and every later send fails.
 * Values are PerfMgr's deltas as they come ("values": "delta").
 *
 * Options (event_plugin_options): host= port= (carbon's UDP port) prefix=
 * stats= gap=.  Statistics: see common.h; this plugin adds "fds", the number
 * of open descriptors of OpenSM at the end of each sweep.
 */
#include "common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <regex.h>
#include <sys/socket.h>
#include <unistd.h>

struct naive {
	osm_opensm_t *osm;
	struct ibsim_opts o;
	struct sockaddr_in dst;
	struct ibsim_stats st;
	DIR *fd_dir;              /* /proc/self/fd, for the "fds" statistic */
};

/* uint64 -> int the way "%d" of a 64-bit value showed it on x86-64: the low
 * 32 bits as a two's-complement int, computed without implementation-defined
 * conversions. */
static inline int naive_as_int(uint64_t v)
{
	uint32_t u = (uint32_t)v;
	if (u <= (uint32_t)INT32_MAX)
		return (int)u;
	return (int)(u - 2147483648u) - 2147483647 - 1;
}

/* Open descriptors of this process: entries of /proc/self/fd read through
 * `d` (opendir'd once, so counting still works when no descriptor is left),
 * minus d's own; -1 when it cannot be read. */
static long naive_count_fds(DIR *d)
{
	struct dirent *e;
	long n = 0;
	if (!d)
		return -1;
	rewinddir(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	return n - 1;
}

static void naive_extra(void *ctx, FILE *fp, int final)
{
	struct naive *p = ctx;
	(void)final;
	fprintf(fp, ", \"fds\": %ld", naive_count_fds(p->fd_dir));
}

static void naive_send(struct naive *p, const osm_epi_port_id_t *id, const uint8_t *rows, const uint64_t *v, int n)
{
	char line[8192], host[OSM_EPI_NODE_NAME_LEN];
	regex_t re;
	regmatch_t m[2];
	long ts = (long)time(NULL);
	size_t len = 0;
	int fd, i;

	host[0] = '\0';
	if (regcomp(&re, "^([A-Za-z0-9_.-]+)", REG_EXTENDED) == 0) {
		if (regexec(&re, id->node_name, 2, m, 0) == 0 && m[1].rm_so >= 0) {
			int k = (int)(m[1].rm_eo - m[1].rm_so);
			snprintf(host, sizeof(host), "%.*s", k, id->node_name + m[1].rm_so);
		}
		regfree(&re);
	}
	(void)host;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {                               /* EMFILE once the leak has used them all */
		IBSIM_ADD(p->st.send_errors, 1);
		IBSIM_ADD(p->st.dropped, n);
		return;
	}
	for (i = 0; i < n && len < sizeof(line); i++)
		len += snprintf(line + len, sizeof(line) - len, "%s.%016" PRIx64 ".p%02u.%s %d %ld\n",
				p->o.prefix, id->node_guid, (unsigned)id->port_num,
				ibsim_counter_names[rows[i]], naive_as_int(v[i]), ts);
	if (len > sizeof(line))
		len = sizeof(line);
	if (sendto(fd, line, len, 0, (struct sockaddr *)&p->dst, sizeof(p->dst)) < 0) {
		IBSIM_ADD(p->st.send_errors, 1);
		IBSIM_ADD(p->st.dropped, n);
	} else {
		IBSIM_ADD(p->st.points, n);
	}
	shutdown(fd, SHUT_RDWR);                    /* and never close(fd): the leak being measured */
}

static void *naive_create(struct osm_opensm *osm)
{
	struct naive *p = calloc(1, sizeof(*p));
	char err[256];
	if (!p)
		return NULL;
	p->osm = osm;
	if (ibsim_parse_opts(osm->subn.opt.event_plugin_options, &p->o, err, sizeof(err))) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim naive plugin: %s\n", err);
		free(p);
		return NULL;
	}
	p->dst.sin_family = AF_INET;
	p->dst.sin_port = htons((uint16_t)p->o.port);
	if (inet_pton(AF_INET, p->o.host, &p->dst.sin_addr) != 1) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim naive plugin: host=%s is not an IPv4 address\n", p->o.host);
		free(p);
		return NULL;
	}
	if (ibsim_stats_open(&p->st, p->o.stats, p->o.gap, "delta", naive_extra, p)) {
		OSM_LOG(&osm->log, OSM_LOG_ERROR, "ibsim naive plugin: cannot open stats=%s: %s\n", p->o.stats,
			strerror(errno));
		free(p);
		return NULL;
	}
	p->fd_dir = opendir("/proc/self/fd");
	OSM_LOG(&osm->log, OSM_LOG_INFO, "ibsim event plugin naive loaded: udp %s:%d prefix %s\n", p->o.host,
		p->o.port, p->o.prefix);
	return p;
}

static void naive_delete(void *data)
{
	struct naive *p = data;
	if (!p)
		return;
	ibsim_stats_close(&p->st);
	if (p->fd_dir)
		closedir(p->fd_dir);
	free(p);
}

static void naive_report(void *data, osm_epi_event_id_t id, void *ev)
{
	struct naive *p = data;
	uint64_t v[IBSIM_N_PE];

	switch (id) {
	case OSM_EVENT_ID_PORT_ERRORS: {
		const osm_epi_pe_event_t *e = ev;
		ibsim_stats_event(&p->st, IBSIM_EV_PE, e->port_id.node_guid, e->port_id.port_num);
		ibsim_pe_values(e, v);
		naive_send(p, &e->port_id, ibsim_pe_rows, v, IBSIM_N_PE);
		break;
	}
	case OSM_EVENT_ID_PORT_DATA_COUNTERS: {
		const osm_epi_dc_event_t *e = ev;
		ibsim_stats_event(&p->st, IBSIM_EV_DC, e->port_id.node_guid, e->port_id.port_num);
		ibsim_dc_values(e, v);
		naive_send(p, &e->port_id, ibsim_dc_rows, v, IBSIM_N_DC);
		break;
	}
	case OSM_EVENT_ID_TRAP:
		ibsim_stats_event(&p->st, IBSIM_EV_TRAP, 0, 0);
		break;
	default:
		break;
	}
}

osm_event_plugin_t osm_event_plugin = {
	.osm_version = IBSIM_OSM_VERSION,
	.create = naive_create,
	.delete = naive_delete,
	.report = naive_report,
};
