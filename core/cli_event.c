/* cli_event.c: `crab event send <text>`: one chat message from the operator's shell. It
 * gets a short produce lease over the admin socket, posts channel.message.received to the
 * gateway's POST /v1/events in a new session, prints the ids (or with --wait the agent's
 * reply, which it waits for over the admin socket) and revokes the lease. A message id
 * makes a retried post after a network error idempotent.
 *
 * From another host (`--gateway https://...` and no admin socket named), the CLI is a
 * paired operator peer (`crab pair listen`, then `crab pair cli` on the gateway's host):
 * it presents its own certificate instead of a lease and accepts only the gateway it
 * pinned. Over https on the gateway's own host, the gateway's fingerprint comes from the
 * admin socket. */
#include "cli.h"

#include <curl/curl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "id.h"
#include "identity.h"
#include "pair_responder.h"
#include "tls.h"
#include "util.h"

#define REPLY_MAX (64 * 1024)
#define POST_TRIES 3

struct send_opts {
	const char *text;
	const char *gateway;
	const char *admin_socket;
	const char *data_dir;   /* the remote operator's identity and pins */
	int remote;             /* a paired operator peer, no admin socket */
	const char *platform, *channel, *actor, *tenant, *agent;
	int json;
	int wait;         /* print the agent's reply */
	long timeout_s;   /* how long --wait waits */
};

struct reply_buf {
	char data[REPLY_MAX + 1];
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct reply_buf *b = arg;
	size_t len = size * n;
	if (b->len + len > REPLY_MAX)
		return 0; /* a reply this large is not the gateway's: abort */
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: crab event send <text> [--gateway URL] [--admin-socket PATH] [--data-dir DIR]\n"
	    "           [--platform P] [--channel C] [--actor A] [--tenant T] [--agent A] [--json]\n"
	    "           [--wait [--timeout SECONDS]]\n");
}

static int parse_args(int argc, char **argv, struct send_opts *o)
{
	static const struct option longopts[] = {
		{"gateway", required_argument, NULL, 'g'},
		{"admin-socket", required_argument, NULL, 's'},
		{"data-dir", required_argument, NULL, 'D'},
		{"platform", required_argument, NULL, 'p'},
		{"channel", required_argument, NULL, 'c'},
		{"actor", required_argument, NULL, 'a'},
		{"tenant", required_argument, NULL, 't'},
		{"agent", required_argument, NULL, 'A'},
		{"json", no_argument, NULL, 'j'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct passwd *pw = getpwuid(geteuid());
	int ch;

	char *end;

	*o = (struct send_opts){.platform = "cli", .channel = "cli",
		.actor = pw != NULL ? pw->pw_name : "operator", .timeout_s = 120};
	if (argc < 2 || strcmp(argv[1], "send") != 0)
		return -1;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'g': o->gateway = optarg; break;
		case 's': o->admin_socket = optarg; break;
		case 'D': o->data_dir = optarg; break;
		case 'p': o->platform = optarg; break;
		case 'c': o->channel = optarg; break;
		case 'a': o->actor = optarg; break;
		case 't': o->tenant = optarg; break;
		case 'A': o->agent = optarg; break;
		case 'j': o->json = 1; break;
		case 'w': o->wait = 1; break;
		case 'T':
			o->timeout_s = strtol(optarg, &end, 10);
			if (*end != '\0' || o->timeout_s < 1 || o->timeout_s > 3600)
				return -1;
			break;
		default: return -1;
		}
	}
	if (optind != argc - 1 || argv[optind][0] == '\0')
		return -1;
	o->text = argv[optind];
	o->remote = o->gateway != NULL && strncmp(o->gateway, "https://", 8) == 0 &&
	    o->admin_socket == NULL && getenv("CRAB_ADMIN_SOCKET") == NULL;
	if (o->data_dir == NULL)
		o->data_dir = getenv("CRAB_DATA_DIR");
	if (o->data_dir == NULL || o->data_dir[0] == '\0')
		o->data_dir = "crab-data";
	return 0;
}

static json_t *build_envelope(const struct send_opts *o)
{
	char message_id[CRAB_ID_MAX];

	crab_id_new("cli", message_id);
	/* A lease fixes tenant and agent; an operator peer names them in the envelope. */
	return json_pack("{s:s, s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s?, s:s?}",
	    "type", "channel.message.received",
	    "source", "platform", o->platform, "channel_id", o->channel, "actor_id", o->actor,
	    "message_id", message_id,
	    "text", o->text, "session_id", "new",
	    "tenant_id", o->remote ? o->tenant : NULL, "agent_id", o->remote ? o->agent : NULL);
}

/* Posts body with a lease's token or, over https, pinned by pin (with the remote
 * operator's certificate in it); 0 with the HTTP status and reply, -1 when no answer came
 * after retries. */
static int post_event(const char *url, const char *token, struct crab_tls_pin *pin,
    const char *body, long *status, struct reply_buf *reply, char *err, size_t errlen)
{
	char auth[128] = "";
	struct curl_slist *headers = NULL;
	CURLcode rc = CURLE_OK;
	CURL *curl = curl_easy_init();

	if (curl == NULL) {
		snprintf(err, errlen, "cannot start the HTTP client");
		return -1;
	}
	headers = curl_slist_append(headers, "Content-Type: application/json");
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, auth);
	}
	if (pin != NULL && crab_tls_curl_pin(curl, pin) != 0) {
		snprintf(err, errlen, "cannot set up TLS for %s", url);
		curl_slist_free_all(headers);
		curl_easy_cleanup(curl);
		return -1;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	for (int attempt = 1; attempt <= POST_TRIES; attempt++) {
		reply->len = 0;
		reply->data[0] = '\0';
		if ((rc = curl_easy_perform(curl)) == CURLE_OK || (pin != NULL && pin->mismatch))
			break;
		if (attempt < POST_TRIES)
			sleep((unsigned)attempt);
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	explicit_bzero(auth, sizeof(auth));
	if (rc != CURLE_OK && pin != NULL && pin->mismatch) {
		char seen[CRAB_FP_SHORT];
		crab_fingerprint_short(pin->seen, seen);
		snprintf(err, errlen, "pin_mismatch: %s presents key %s, not the gateway this host "
				      "pinned", url, seen);
		return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "cannot post to %s: %s", url, curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

static int print_result(const struct send_opts *o, long status, const struct reply_buf *reply)
{
	json_t *r = json_loads(reply->data, 0, NULL);
	int rc = 1;

	if (status == 202 && json_is_object(r)) {
		if (o->wait)
			; /* the reply is what is printed */
		else if (o->json)
			printf("%s\n", reply->data);
		else
			printf("event_id   %s\nsession_id %s\n",
			    json_string_value(json_object_get(r, "event_id")),
			    json_string_value(json_object_get(r, "session_id")));
		rc = 0;
	} else {
		json_t *e = json_object_get(r, "error");
		fprintf(stderr, "crab: the gateway answered %ld: %s: %s\n", status,
		    json_string_value(json_object_get(e, "code")) ?: "error",
		    json_string_value(json_object_get(e, "message")) ?: reply->data);
	}
	json_decref(r);
	return rc;
}

/* --wait: the agent's reply to event_id, through the admin socket. */
static int wait_reply(const struct send_opts *o, const char *sock, const char *event_id)
{
	json_t *args = json_pack("{s:s, s:I}", "event_id", event_id, "timeout_ms",
	    (json_int_t)o->timeout_s * 1000), *r;
	const char *status, *text;
	char err[512];
	int rc;

	if (crab_admin_call(sock, "turns.wait", args, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: no reply: %s\n", err);
		return 1;
	}
	status = json_string_value(json_object_get(r, "status"));
	text = json_string_value(json_object_get(r, "text"));
	rc = status != NULL && strcmp(status, "completed") == 0 ? 0 : 1;
	if (o->json) {
		char *s = json_dumps(r, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
	} else if (rc == 0) {
		printf("%s\n", text ? text : "");
	} else {
		fprintf(stderr, "crab: the turn failed: %s: %s\n",
		    json_string_value(json_object_get(r, "error_code")) ?: "error",
		    json_string_value(json_object_get(r, "error_message")) ?: "");
	}
	json_decref(r);
	return rc;
}

/* The fingerprints of the gateways this host pinned as an operator, NULL-terminated
 * (malloc'd, strings borrowed from pins); NULL with err when there are none. */
static const char **operator_pins(json_t *pins, char *err, size_t errlen)
{
	const char **list = xcalloc(json_array_size(pins) + 1, sizeof(*list));
	size_t i, j, n = 0;
	json_t *g, *role;

	json_array_foreach(pins, i, g) {
		json_array_foreach(json_object_get(g, "roles"), j, role) {
			const char *type = json_string_value(json_object_get(role, "component_type"));
			const char *fp = json_string_value(json_object_get(g, "fingerprint"));
			if (type != NULL && fp != NULL && strcmp(type, "operator") == 0) {
				list[n++] = fp;
				break;
			}
		}
	}
	if (n == 0) {
		snprintf(err, errlen, "this host is paired with no gateway as an operator: run "
				      "`crab pair listen` here and `crab pair cli` on the gateway's host");
		free(list);
		return NULL;
	}
	return list;
}

/* From another host, as a paired operator peer. */
static int send_remote(const struct send_opts *o, const char *url, const char *body,
    struct reply_buf *reply)
{
	struct crab_tls_pin pin = {0};
	struct crab_identity *id = NULL;
	const char **expect = NULL;
	json_t *pins = NULL;
	long http_status = 0;
	char err[512];
	int rc = 1;

	if (o->wait) {
		fprintf(stderr, "crab: --wait needs the gateway's admin socket: run it on the "
				"gateway's host\n");
		return 2;
	}
	if ((id = crab_identity_load(o->data_dir, "crab-cli", 0, NULL, err, sizeof(err))) == NULL ||
	    (pins = crab_pair_pins_load(o->data_dir, err, sizeof(err))) == NULL ||
	    (expect = operator_pins(pins, err, sizeof(err))) == NULL) {
		fprintf(stderr, "crab: %s\n", err);
		goto out;
	}
	pin.id = id;
	pin.expect_any = expect;
	if (post_event(url, NULL, &pin, body, &http_status, reply, err, sizeof(err)) != 0)
		fprintf(stderr, "crab: %s\n", err);
	else
		rc = print_result(o, http_status, reply);
out:
	EVP_PKEY_free(pin.key);
	free(expect);
	json_decref(pins);
	crab_identity_free(id);
	return rc;
}

int crab_cli_event_main(int argc, char **argv)
{
	struct send_opts o;
	struct crab_tls_pin pin = {0};
	const char *sock;
	json_t *lease = NULL, *status = NULL, *env;
	char err[512], url[512];
	char *body;
	struct reply_buf *reply;
	long http_status = 0;
	int rc = 1;

	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	env = build_envelope(&o);
	body = json_dumps(env, JSON_COMPACT);
	json_decref(env);
	reply = xcalloc(1, sizeof(*reply));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (o.remote) {
		snprintf(url, sizeof(url), "%s/v1/events", o.gateway);
		rc = send_remote(&o, url, body, reply);
		goto out;
	}
	sock = crab_cli_admin_socket(o.admin_socket);
	/* The gateway says where its public listener is, and which key it presents. */
	if (crab_admin_call(sock, "pair.test", NULL, &status, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		goto out;
	}
	pin.expect = json_string_value(json_object_get(status, "fingerprint"));
	if (o.gateway == NULL)
		o.gateway = json_string_value(json_object_get(status, "listen"));
	snprintf(url, sizeof(url), "%s/v1/events", o.gateway);
	{
		json_t *args = json_pack("{s:s, s:[s], s:i}", "tenant_id",
		    o.tenant ? o.tenant : "default", "scopes", "produce", "ttl_s", 120);
		if (o.agent != NULL)
			json_object_set_new(args, "agent_id", json_string(o.agent));
		if (crab_admin_call(sock, "lease.create", args, &lease, err, sizeof(err)) != 0) {
			fprintf(stderr, "crab: cannot get a lease: %s\n", err);
			goto out;
		}
	}
	if (post_event(url, json_string_value(json_object_get(lease, "token")),
		strncmp(url, "https://", 8) == 0 ? &pin : NULL, body, &http_status, reply, err,
		sizeof(err)) != 0)
		fprintf(stderr, "crab: %s\n", err);
	else if ((rc = print_result(&o, http_status, reply)) == 0 && o.wait) {
		json_t *r = json_loads(reply->data, 0, NULL);
		fflush(stdout);
		rc = wait_reply(&o, sock, json_string_value(json_object_get(r, "event_id")));
		json_decref(r);
	}
	{
		json_t *args = json_pack("{s:O}", "lease_id", json_object_get(lease, "lease_id")), *r;
		if (crab_admin_call(sock, "lease.revoke", args, &r, err, sizeof(err)) == 0)
			json_decref(r);
	}
out:
	curl_global_cleanup();
	EVP_PKEY_free(pin.key);
	free(reply);
	free(body);
	json_decref(lease);
	json_decref(status);
	return rc;
}
