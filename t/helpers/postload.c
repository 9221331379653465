/* postload.c: a small load client for the crash test and the bench, on plain POSIX
 * sockets and one thread per connection.
 *
 *   postload -u http://127.0.0.1:PORT -t TOKEN -c CONNS -n TOTAL [-p PREFIX] [-o ACKED]
 *   postload -u URL -t TOKEN -c CONNS -r ACKED
 *
 * The first form opens CONNS keep-alive connections; each posts its share of TOTAL
 * channel.message.received events one after the other, with message ids and explicit
 * idempotency keys PREFIX-THREAD-SEQ, and appends "KEY EVENT_ID" to ACKED for every 202.
 * With -a ACTORS the events come from that many actors (a0, a1, ...: as many sessions)
 * instead of one. With -R RATE the posts are paced: RATE a second in all, each connection
 * posting at its own even interval (one that falls behind posts at once until it has
 * caught up), instead of each post following the last answer at once.
 * The summary on stderr ends with the acknowledgement latency (post sent to 202 read),
 * "ack_us p50 N p99 N max N".
 * The second form (replay) posts every key of ACKED again and checks that each answer is
 * a 202 with "duplicate": true and the same event id.
 *
 * The server may die mid-run: a connection that is reset, closed or silent for
 * IO_TIMEOUT_S stops, is counted, and the run still ends with status 0 and a summary on
 * stderr. Exit 1 only for a replay mismatch (or any failed replay request); 2 for usage. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_S 10
#define RESP_MAX 65536
#define KEY_MAX 200
#define ID_MAX 128
#define CONNS_MAX 1024

struct replay_entry {
	char key[KEY_MAX];
	char event_id[ID_MAX];
};

struct opts {
	char host[256];
	char port[16];
	const char *token;
	const char *prefix;
	const char *acked_path;
	const char *replay_path;
	long conns;
	long total;
	long actors; /* -a: spread events over this many actors (sessions); 0 = one */
	double rate; /* -R: posts a second in all; 0 = as fast as answered */
	double t0;   /* when the first post of a paced run is due */
};

struct worker {
	pthread_t thread;
	int index;
	const struct opts *o;
	struct addrinfo *addr;
	int acked_fd;
	/* replay: entries [first, first + count) of the shared table */
	const struct replay_entry *replay;
	long first, count;
	/* results */
	long sent, accepted, duplicate, other_status, mismatched, dropped, reconnects;
	long *ack_us; /* one per post answered */
	long nack;
};

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("postload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
	    "usage: postload -u http://HOST:PORT -t TOKEN -c CONNS -n TOTAL [-p PREFIX] [-o ACKED]\n"
	    "                [-a ACTORS] [-R RATE]\n"
	    "       postload -u http://HOST:PORT -t TOKEN -c CONNS -r ACKED\n");
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	double d = t - now_s();
	struct timespec ts;

	if (d <= 0)
		return;
	ts.tv_sec = (time_t)d;
	ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static void parse_url(const char *url, struct opts *o)
{
	const char *hp, *colon;
	size_t hlen;

	if (strncmp(url, "http://", 7) != 0)
		die("only http:// URLs: '%s'", url);
	hp = url + 7;
	colon = strrchr(hp, ':');
	if (colon == NULL || colon == hp)
		die("the URL needs a host and a port: '%s'", url);
	hlen = (size_t)(colon - hp);
	if (hlen >= sizeof(o->host))
		die("host too long");
	memcpy(o->host, hp, hlen);
	o->host[hlen] = '\0';
	snprintf(o->port, sizeof(o->port), "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
	if (o->port[0] == '\0')
		die("the URL needs a port: '%s'", url);
}

static int connect_to(const struct addrinfo *ai)
{
	struct timeval tv = {IO_TIMEOUT_S, 0};
	int one = 1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

struct response {
	int status;
	int close; /* the server said Connection: close */
	char body[RESP_MAX];
	size_t body_len;
};

/* Reads one response. 0, or -1 when the connection broke, timed out or sent garbage.
 * buf/have carry bytes read past the response to the next call (there are none with
 * one request in flight, but a server may send them). */
static int read_response(int fd, char *buf, size_t cap, size_t *have, struct response *r)
{
	char *end = NULL, *p;
	size_t head_len, need;
	long clen = -1;

	for (;;) {
		if (*have > 0 && (end = memmem(buf, *have, "\r\n\r\n", 4)) != NULL)
			break;
		if (*have >= cap - 1)
			return -1;
		ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
	head_len = (size_t)(end - buf) + 4;
	buf[head_len - 2] = '\0'; /* terminates the header block for the scan below */
	if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	r->close = 0;
	for (p = strstr(buf, "\r\n"); p != NULL && p[2] != '\0'; p = strstr(p + 2, "\r\n")) {
		const char *h = p + 2, *eol = strstr(h, "\r\n");
		size_t hl = eol ? (size_t)(eol - h) : strlen(h);

		if (strncasecmp(h, "Content-Length:", 15) == 0)
			clen = strtol(h + 15, NULL, 10);
		else if (strncasecmp(h, "Connection:", 11) == 0 && hl >= 16 &&
			 memmem(h, hl, "close", 5) != NULL)
			r->close = 1;
	}
	if (clen < 0 || (size_t)clen >= sizeof(r->body))
		return -1;
	need = head_len + (size_t)clen;
	if (need > cap - 1)
		return -1;
	while (*have < need) {
		ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
	memcpy(r->body, buf + head_len, (size_t)clen);
	r->body[clen] = '\0';
	r->body_len = (size_t)clen;
	memmove(buf, buf + need, *have - need);
	*have -= need;
	return 0;
}

/* The string value of "name" in a flat JSON object (our ids need no unescaping). */
static int json_str(const char *body, const char *name, char *out, size_t outlen)
{
	char pat[64];
	const char *p, *q;

	snprintf(pat, sizeof(pat), "\"%s\":\"", name);
	if ((p = strstr(body, pat)) == NULL)
		return -1;
	p += strlen(pat);
	if ((q = strchr(p, '"')) == NULL || (size_t)(q - p) >= outlen)
		return -1;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return 0;
}

static int build_request(const struct opts *o, const char *key, long seq, char *req,
    size_t cap)
{
	char body[1024], actor[32] = "loader";
	int blen, n;

	if (o->actors > 0)
		snprintf(actor, sizeof(actor), "a%ld", seq % o->actors);
	blen = snprintf(body, sizeof(body),
	    "{\"type\":\"channel.message.received\",\"idempotency_key\":\"%s\","
	    "\"text\":\"load test message\",\"source\":{\"platform\":\"postload\","
	    "\"channel_id\":\"load\",\"actor_id\":\"%s\",\"message_id\":\"%s\"}}",
	    key, actor, key);
	if (blen < 0 || (size_t)blen >= sizeof(body))
		return -1;
	n = snprintf(req, cap,
	    "POST /v1/events HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
	    o->host, o->port, o->token, blen, body);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	struct response *r = malloc(sizeof(*r));
	size_t cap = RESP_MAX + 4096;
	char *buf = malloc(cap);
	char req[2048], key[KEY_MAX], event_id[ID_MAX], line[KEY_MAX + ID_MAX + 2];
	size_t have = 0;
	long i, n = w->count;
	int fd;

	if (r == NULL || buf == NULL)
		goto out;
	if ((fd = connect_to(w->addr)) < 0) {
		w->dropped++;
		goto out;
	}
	if ((w->ack_us = calloc((size_t)(n > 0 ? n : 1), sizeof(*w->ack_us))) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		const struct replay_entry *e = w->replay ? &w->replay[w->first + i] : NULL;
		double sent_at;
		int len;

		if (e != NULL)
			snprintf(key, sizeof(key), "%s", e->key);
		else
			snprintf(key, sizeof(key), "%s-%d-%ld", o->prefix, w->index, i);
		/* interleaved, so that the connections talk to different actors at once */
		if ((len = build_request(o, key, w->index + i * o->conns, req, sizeof(req))) < 0) {
			fprintf(stderr, "postload: request too large for key '%s'\n", key);
			break;
		}
		if (o->rate > 0) /* connection k of C posts at t0 + (k + i * C) / rate */
			sleep_until(o->t0 + (double)(w->index + i * o->conns) / o->rate);
		w->sent++;
		sent_at = now_s();
		if (send_all(fd, req, (size_t)len) != 0 ||
		    read_response(fd, buf, cap, &have, r) != 0) {
			w->dropped++; /* reset, closed or silent: this connection is done */
			break;
		}
		w->ack_us[w->nack++] = (long)((now_s() - sent_at) * 1e6);
		if (r->status != 202 || json_str(r->body, "event_id", event_id, sizeof(event_id)) != 0) {
			w->other_status++;
			if (e != NULL)
				fprintf(stderr, "postload: replay of '%s': status %d: %s\n", key,
				    r->status, r->body);
		} else if (e != NULL) {
			if (strstr(r->body, "\"duplicate\":true") == NULL ||
			    strcmp(event_id, e->event_id) != 0) {
				w->mismatched++;
				fprintf(stderr, "postload: replay of '%s' (first %s): %s\n", key,
				    e->event_id, r->body);
			} else {
				w->duplicate++;
			}
		} else {
			if (strstr(r->body, "\"duplicate\":true") != NULL)
				w->duplicate++;
			else
				w->accepted++;
			if (w->acked_fd >= 0) {
				/* one write per line on an O_APPEND descriptor: whole lines only */
				len = snprintf(line, sizeof(line), "%s %s\n", key, event_id);
				if (write(w->acked_fd, line, (size_t)len) != len)
					fprintf(stderr, "postload: cannot write the acked file\n");
			}
		}
		if (r->close) {
			close(fd);
			fd = -1;
			have = 0;
			if (i + 1 < n) {
				w->reconnects++;
				if ((fd = connect_to(w->addr)) < 0) {
					w->dropped++;
					goto out;
				}
			}
		}
	}
	if (fd >= 0)
		close(fd);
out:
	free(buf);
	free(r);
	return NULL;
}

/* Reads "KEY EVENT_ID" lines; returns the count, the table in *out. */
static long load_replay(const char *path, struct replay_entry **out)
{
	FILE *f = fopen(path, "re");
	struct replay_entry *t = NULL;
	long n = 0, cap = 0;
	char line[KEY_MAX + ID_MAX + 16];

	if (f == NULL)
		die("cannot open '%s': %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		struct replay_entry e;
		if (sscanf(line, "%199s %127s", e.key, e.event_id) != 2)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((t = realloc(t, (size_t)cap * sizeof(*t))) == NULL)
				die("out of memory");
		}
		t[n++] = e;
	}
	fclose(f);
	*out = t;
	return n;
}

int main(int argc, char **argv)
{
	struct opts o = {.prefix = "pl", .conns = 1, .total = -1};
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	struct replay_entry *table = NULL;
	struct worker *w;
	long per, extra, next = 0, replay_n = 0;
	long sent = 0, accepted = 0, duplicate = 0, other = 0, mismatched = 0, dropped = 0;
	long reconnects = 0, nack = 0, *acks = NULL;
	int acked_fd = -1, ch, rc;
	const char *url = NULL;
	double t0, dt;

	while ((ch = getopt(argc, argv, "u:t:c:n:p:o:r:a:R:")) != -1) {
		switch (ch) {
		case 'u': url = optarg; break;
		case 't': o.token = optarg; break;
		case 'c': o.conns = strtol(optarg, NULL, 10); break;
		case 'n': o.total = strtol(optarg, NULL, 10); break;
		case 'p': o.prefix = optarg; break;
		case 'o': o.acked_path = optarg; break;
		case 'r': o.replay_path = optarg; break;
		case 'a': o.actors = strtol(optarg, NULL, 10); break;
		case 'R': o.rate = strtod(optarg, NULL); break;
		default: usage();
		}
	}
	if (optind != argc || url == NULL || o.token == NULL || o.conns < 1 ||
	    o.conns > CONNS_MAX || (o.replay_path == NULL && o.total < 0) ||
	    (o.replay_path != NULL && (o.total >= 0 || o.acked_path != NULL)))
		usage();
	if (strlen(o.prefix) > 64 || strpbrk(o.prefix, "\"\\ ") != NULL)
		die("the prefix must be short, without quotes, backslashes or spaces");
	parse_url(url, &o);
	if ((rc = getaddrinfo(o.host, o.port, &hints, &ai)) != 0)
		die("cannot resolve '%s': %s", o.host, gai_strerror(rc));
	if (o.replay_path != NULL) {
		replay_n = load_replay(o.replay_path, &table);
		o.total = replay_n;
	}
	if (o.acked_path != NULL &&
	    (acked_fd = open(o.acked_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		die("cannot open '%s': %s", o.acked_path, strerror(errno));
	if ((w = calloc((size_t)o.conns, sizeof(*w))) == NULL)
		die("out of memory");
	per = o.total / o.conns;
	extra = o.total % o.conns;
	t0 = now_s();
	o.t0 = t0 + 0.01; /* a paced run begins once every thread has started */
	for (long i = 0; i < o.conns; i++) {
		struct opts *mine = NULL;
		w[i].index = (int)i;
		w[i].addr = ai;
		w[i].acked_fd = acked_fd;
		w[i].o = &o;
		w[i].count = per + (i < extra);
		if (o.replay_path != NULL) {
			w[i].replay = table;
			w[i].first = next;
			next += w[i].count;
		} else {
			/* each worker posts its own share: a private copy of the options */
			if ((mine = malloc(sizeof(*mine))) == NULL)
				die("out of memory");
			*mine = o;
			mine->total = w[i].count;
			w[i].o = mine;
		}
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
			die("cannot start thread %ld", i);
	}
	for (long i = 0; i < o.conns; i++) {
		pthread_join(w[i].thread, NULL);
		acks = realloc(acks, (size_t)(nack + w[i].nack + 1) * sizeof(*acks));
		if (acks == NULL)
			die("out of memory");
		memcpy(acks + nack, w[i].ack_us, (size_t)w[i].nack * sizeof(*acks));
		nack += w[i].nack;
		free(w[i].ack_us);
		sent += w[i].sent;
		accepted += w[i].accepted;
		duplicate += w[i].duplicate;
		other += w[i].other_status;
		mismatched += w[i].mismatched;
		dropped += w[i].dropped;
		reconnects += w[i].reconnects;
		if (w[i].o != &o)
			free((void *)w[i].o);
	}
	dt = now_s() - t0;
	qsort(acks, (size_t)nack, sizeof(*acks), cmp_long);
	fprintf(stderr,
	    "postload: %s: sent %ld, accepted %ld, duplicate %ld, other status %ld, "
	    "mismatched %ld, connections dropped %ld, reconnects %ld, %.2f s, %.0f req/s, "
	    "ack_us p50 %ld p99 %ld max %ld\n",
	    o.replay_path ? "replay" : "post", sent, accepted, duplicate, other, mismatched, dropped,
	    reconnects, dt, dt > 0 ? (double)sent / dt : 0.0, nack ? acks[nack / 2] : 0,
	    nack ? acks[nack * 99 / 100] : 0, nack ? acks[nack - 1] : 0);
	free(acks);
	if (acked_fd >= 0)
		close(acked_fd);
	freeaddrinfo(ai);
	free(table);
	free(w);
	if (o.replay_path != NULL && (mismatched > 0 || other > 0 || dropped > 0 || duplicate != replay_n))
		return 1;
	return 0;
}
