/* pair_responder.c: POST /v1/pair on a component, and its pins file. */
#include "pair_responder.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "log.h"
#include "util.h"

#define PINS_FILE "gateways.json"
#define PINS_MAX_BYTES (256u << 10)
#define NONCE_BYTES 32

struct crab_pair_responder {
	struct crab_pair_responder_opts o;
	char *dir, *expect;
	json_t *offers;
	json_t *pins; /* the file's "gateways" array */
	int64_t window_until;
};

json_t *crab_pair_pins_load(const char *dir, char *err, size_t errlen)
{
	char path[4200];
	json_error_t jerr;
	json_t *doc, *list;
	size_t len;
	char *text;

	snprintf(path, sizeof(path), "%s/%s", dir, PINS_FILE);
	if ((text = crab_file_read(path, PINS_MAX_BYTES, &len, err, errlen)) == NULL)
		return errno == ENOENT ? json_array() : NULL;
	doc = json_loadb(text, len, 0, &jerr);
	free(text);
	list = json_incref(json_object_get(doc, "gateways"));
	json_decref(doc);
	if (!json_is_array(list)) {
		snprintf(err, errlen, "%s: not a pins file (%s)", path,
		    doc ? "no \"gateways\" array" : jerr.text);
		json_decref(list);
		return NULL;
	}
	return list;
}

static json_t *pin_find(json_t *pins, const char *fp)
{
	size_t i;
	json_t *g;

	json_array_foreach(pins, i, g) {
		const char *have = json_string_value(json_object_get(g, "fingerprint"));
		if (have != NULL && fp != NULL && strcmp(have, fp) == 0)
			return g;
	}
	return NULL;
}

int crab_pair_pins_has(const char *dir, const char *fp, char *err, size_t errlen)
{
	json_t *pins = crab_pair_pins_load(dir, err, errlen);
	int has;

	if (pins == NULL)
		return -1;
	has = pin_find(pins, fp) != NULL;
	json_decref(pins);
	return has;
}

struct crab_pair_responder *crab_pair_responder_new(const struct crab_pair_responder_opts *o,
    char *err, size_t errlen)
{
	struct crab_pair_responder *r;
	json_t *pins = crab_pair_pins_load(o->dir, err, errlen);
	int64_t now = crab_clock_now_ms();

	if (pins == NULL)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->o = *o;
	r->dir = xstrdup(o->dir);
	r->expect = o->expect ? xstrdup(o->expect) : NULL;
	r->offers = o->offers ? json_incref(o->offers) : json_object();
	r->pins = pins;
	if (o->window_ms > 0)
		r->window_until = now + o->window_ms;
	else if (json_array_size(pins) == 0)
		r->window_until = now + CRAB_PAIR_FIRST_WINDOW_MS;
	return r;
}

void crab_pair_responder_free(struct crab_pair_responder *r)
{
	if (r == NULL)
		return;
	free(r->dir);
	free(r->expect);
	json_decref(r->offers);
	json_decref(r->pins);
	free(r);
}

int crab_pair_responder_pinned(struct crab_pair_responder *r, const char *fp)
{
	return pin_find(r->pins, fp) != NULL;
}

size_t crab_pair_responder_count(struct crab_pair_responder *r)
{
	return json_array_size(r->pins);
}

int64_t crab_pair_responder_window_until(struct crab_pair_responder *r)
{
	return r->window_until > crab_clock_now_ms() ? r->window_until : 0;
}

/* The request's fields, borrowed from body. */
struct pair_request {
	const char *gateway_id, *gateway_name, *component_type, *component_id, *nonce;
};

static int field(json_t *body, const char *name, size_t max, const char **out,
    struct crab_error *err)
{
	json_t *v = json_object_get(body, name);

	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
		crab_error_set(err, "bad_request", name, "'%s' must be a string of 1 to %zu bytes",
		    name, max);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static int nonce_ok(const char *nonce)
{
	unsigned char raw[64];
	size_t n = strlen(nonce);
	int len;

	/* 32 bytes in standard base64 with padding: 44 characters, one '='. */
	if (n != 44 || nonce[43] != '=' || nonce[42] == '=')
		return 0;
	len = EVP_DecodeBlock(raw, (const unsigned char *)nonce, (int)n);
	return len == NONCE_BYTES + 1; /* DecodeBlock counts the padding as a zero byte */
}

static int parse_request(json_t *body, struct pair_request *p, struct crab_error *err)
{
	if (!json_is_object(body)) {
		crab_error_set(err, "invalid_json", NULL, "the body must be a JSON object");
		return -1;
	}
	if (field(body, "gateway_id", CRAB_FP_HEX - 1, &p->gateway_id, err) != 0 ||
	    field(body, "component_type", 32, &p->component_type, err) != 0 ||
	    field(body, "component_id", 128, &p->component_id, err) != 0 ||
	    field(body, "nonce", 64, &p->nonce, err) != 0)
		return -1;
	p->gateway_name = json_string_value(json_object_get(body, "gateway_name"));
	if (p->gateway_name == NULL || strlen(p->gateway_name) > 128)
		p->gateway_name = "";
	if (!nonce_ok(p->nonce)) {
		crab_error_set(err, "bad_request", "nonce", "'nonce' must be 32 bytes in base64");
		return -1;
	}
	return 0;
}

static int type_allowed(struct crab_pair_responder *r, const char *type)
{
	for (const char *const *t = r->o.types; t != NULL && *t != NULL; t++) {
		if (strcmp(*t, type) == 0)
			return 1;
	}
	return 0;
}

/* Whether this gateway may pair now; -1 with err set when not. */
static int admit(struct crab_pair_responder *r, const char *fp, const struct pair_request *p,
    struct crab_error *err)
{
	if (strcmp(p->gateway_id, fp) != 0) {
		crab_error_set(err, "pin_mismatch", "gateway_id",
		    "gateway_id is not the key of the TLS client certificate");
		return -1;
	}
	if (r->expect != NULL && !crab_fingerprint_matches(fp, r->expect)) {
		char short_fp[CRAB_FP_SHORT];
		crab_fingerprint_short(fp, short_fp);
		log_warnx("pairing refused: gateway %s is not the expected %s", short_fp,
		    r->expect);
		crab_error_set(err, "pin_mismatch", NULL,
		    "this component expects another gateway (it saw %s)", short_fp);
		return -1;
	}
	if (!type_allowed(r, p->component_type)) {
		crab_error_set(err, "forbidden", "component_type",
		    "this component cannot be paired as '%.32s'", p->component_type);
		return -1;
	}
	/* A gateway already pinned adds a role without a window. */
	if (pin_find(r->pins, fp) == NULL && crab_pair_responder_window_until(r) == 0) {
		crab_error_set(err, "pairing_closed", NULL,
		    "no pairing window is open: restart the component with --pairing-window");
		return -1;
	}
	if (pin_find(r->pins, fp) == NULL &&
	    json_array_size(r->pins) >= CRAB_PAIR_MAX_GATEWAYS) {
		crab_error_set(err, "forbidden", NULL, "this component pins too many gateways");
		return -1;
	}
	return 0;
}

/* Adds fp (with the role) to the pins and writes the file; 0 or -1 (logged). */
static int pin_store(struct crab_pair_responder *r, const char *fp, const struct pair_request *p)
{
	json_t *pins = json_deep_copy(r->pins), *g = pin_find(pins, fp), *roles, *doc;
	char when[32], err[512];
	size_t i;
	json_t *role;
	char *text;
	int rc, have = 0;

	crab_clock_format(crab_clock_now_ms(), when, sizeof(when));
	if (g == NULL) {
		g = json_pack("{s:s, s:s, s:s, s:[]}", "fingerprint", fp, "name",
		    p->gateway_name, "paired_at", when, "roles");
		json_array_append_new(pins, g);
	}
	roles = json_object_get(g, "roles");
	json_array_foreach(roles, i, role) {
		have |= strcmp(json_string_value(json_object_get(role, "component_type")) ?: "",
			    p->component_type) == 0 &&
		    strcmp(json_string_value(json_object_get(role, "component_id")) ?: "",
			p->component_id) == 0;
	}
	if (!have)
		json_array_append_new(roles, json_pack("{s:s, s:s}", "component_type",
		    p->component_type, "component_id", p->component_id));
	doc = json_pack("{s:O}", "gateways", pins);
	text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	rc = crab_file_write_atomic(r->dir, PINS_FILE, text, strlen(text), 0, err, sizeof(err));
	free(text);
	if (rc != 0) {
		log_warnx("pairing: cannot store the gateway's pin: %s", err);
		json_decref(pins);
		return -1;
	}
	json_decref(r->pins);
	r->pins = pins;
	return 0;
}

static void reply_json(struct crab_http_request *req, int status, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);

	crab_http_reply(req, status, text, strlen(text));
	free(text);
	json_decref(o);
}

void crab_pair_responder_handle(struct crab_pair_responder *r, struct crab_http_request *req)
{
	const char *fp = crab_http_request_peer_fingerprint(req);
	struct pair_request p;
	struct crab_error err;
	unsigned char digest[32];
	char sig[CRAB_SIG_B64], short_fp[CRAB_FP_SHORT];
	json_t *body = NULL;
	const char *text;
	size_t len;

	if (strcmp(crab_http_request_method(req), "POST") != 0) {
		crab_error_set(&err, "method_not_allowed", NULL, "use POST on /v1/pair");
		goto refuse;
	}
	if (fp == NULL) {
		crab_error_set(&err, "unauthenticated", NULL,
		    "pairing needs the gateway's client certificate");
		goto refuse;
	}
	text = crab_http_request_body(req, &len);
	body = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, NULL);
	if (parse_request(body, &p, &err) != 0 || admit(r, fp, &p, &err) != 0)
		goto refuse;
	crab_pair_transcript(fp, r->o.id->fingerprint, p.nonce, p.component_type,
	    p.component_id, digest);
	if (crab_identity_sign(r->o.id, digest, sig) != 0) {
		crab_error_set(&err, "internal", NULL, "cannot sign the pairing transcript");
		goto refuse;
	}
	if (pin_store(r, fp, &p) != 0) {
		crab_error_set(&err, "internal", NULL, "cannot store the gateway's pin");
		goto refuse;
	}
	crab_fingerprint_short(fp, short_fp);
	log_info("paired as %s '%s' with gateway '%s' %s", p.component_type, p.component_id,
	    p.gateway_name, short_fp);
	if (r->o.on_paired != NULL)
		r->o.on_paired(r->o.arg, fp, p.gateway_name, p.component_type, p.component_id);
	reply_json(req, 200, json_pack("{s:s, s:s, s:O, s:s}", "component_id", p.component_id,
	    "fingerprint", r->o.id->fingerprint, "offers", r->offers, "signature", sig));
	json_decref(body);
	return;
refuse:
	if (strcmp(err.code, "bad_request") != 0 && strcmp(err.code, "invalid_json") != 0)
		log_info("pairing refused (%s): %s", err.code, err.message);
	json_decref(body);
	crab_http_reply_error(req, &err);
}
