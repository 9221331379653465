/* ingest.c: one accepted event, from any producer (HTTP lease, module, admin operator):
 * validate, route (tenant from the identity mapping, agent from the routes), then in one
 * store transaction resolve the session, claim the idempotency key, store the event with
 * where its answer goes and record the channel as last active; answer only after the
 * commit, and hand the event to the turn executor. */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "envelope.h"
#include "id.h"
#include "jsontext.h"
#include "log.h"
#include "outbox.h"
#include "peers.h"
#include "router.h"
#include "turns.h"
#include "util.h"

/* One event on its way to the store. Inputs are owned copies; outputs are set by run. */
struct ingest_job {
	struct crab_store_job job;
	struct crab_gateway *gw;
	/* The router when it was submitted: a config reload frees the old one only after
	 * every job queued before it has run (crab_gateway_config_swap). */
	const struct crab_router *router;
	crab_ingest_answer_fn answer; /* who hears the outcome: the HTTP request, a module */
	void *answer_arg;
	char event_id[CRAB_ID_MAX];
	char fresh_session_id[CRAB_ID_MAX]; /* used if a session must be created */
	struct crab_route route;   /* empty until routed (in the worker for find_target) */
	char *platform, *channel_id, *actor_id, *thread_id;
	char *fixed_tenant, *fixed_agent; /* an internal event's own, routed in the worker */
	char *idempotency_key, *type, *producer;
	char *given_session_id; /* CRAB_SESSION_GIVEN */
	char *bind_lease_id;    /* a lease for a new session: its first event binds it */
	char *body;             /* the envelope as received */
	char *target;           /* where the answer goes (JSON), NULL: nowhere yet */
	enum crab_session_mode mode;
	int channel_message;    /* records last_active */
	int find_target;        /* an internal event without target: PROTOCOLS.md §1 */
	int64_t now;
	struct turn *turn;      /* a reserved slot: the turn may start in this commit */
	/* results */
	int turn_started;
	char session_id[CRAB_STORE_ID_MAX];
	char result_event_id[CRAB_STORE_ID_MAX];
	int duplicate;
	struct crab_error err;
	int failed;
};

static void ingest_job_free(struct ingest_job *j)
{
	crab_route_release(&j->route);
	free(j->platform);
	free(j->channel_id);
	free(j->actor_id);
	free(j->thread_id);
	free(j->fixed_tenant);
	free(j->fixed_agent);
	free(j->idempotency_key);
	free(j->type);
	free(j->producer);
	free(j->given_session_id);
	free(j->bind_lease_id);
	free(j->body);
	free(j->target);
	free(j);
}

/* ---- worker side ---- */

static int session_create(struct crab_store *st, struct ingest_job *j)
{
	struct crab_store_session s = {0};
	struct crab_store_binding b = {
		.tenant_id = j->route.tenant_id, .runtime_key = j->route.runtime_key,
		.agent_id = j->route.agent_id, .platform = j->platform,
		.channel_id = j->channel_id, .actor_id = j->actor_id,
		.isolation_key = j->route.isolation_key, .session_id = j->fresh_session_id,
		.updated_at = j->now,
	};
	int64_t seq;
	char key[CRAB_ID_MAX + 16];
	struct crab_buf data = {0};
	int rc;

	crab_strlcpy(s.id, j->fresh_session_id, sizeof(s.id));
	crab_strlcpy(s.tenant_id, j->route.tenant_id, sizeof(s.tenant_id));
	crab_strlcpy(s.agent_id, j->route.agent_id, sizeof(s.agent_id));
	crab_strlcpy(s.runtime_key, j->route.runtime_key, sizeof(s.runtime_key));
	crab_strlcpy(s.memory_key, j->route.memory_key, sizeof(s.memory_key));
	crab_strlcpy(s.status, "open", sizeof(s.status));
	s.created_at = s.updated_at = j->now;
	if (crab_store_session_create(st, &s) != 0 || crab_store_binding_set(st, &b) != 0 ||
	    crab_store_session_seq(st, s.id, 1, &seq) != 0)
		return -1;
	snprintf(key, sizeof(key), "%s:created", s.id);
	crab_jobj_open(&data);
	crab_jobj_str(&data, "runtime_key", s.runtime_key);
	crab_jobj_str(&data, "memory_key", s.memory_key);
	crab_jobj_close(&data);
	rc = crab_outbox_put(st, &(struct crab_outbox_event){
		.type = "session.created", .tenant_id = s.tenant_id, .agent_id = s.agent_id,
		.session_id = s.id, .idempotency_key = key, .seq = seq, .now_ms = j->now,
		.data = data.data});
	crab_buf_free(&data);
	if (rc != 0)
		return -1;
	crab_strlcpy(j->session_id, j->fresh_session_id, sizeof(j->session_id));
	return 0;
}

static int session_forbidden(struct ingest_job *j, const char *why)
{
	crab_error_set(&j->err, "session_forbidden", "session_id", "%s", why);
	j->failed = 1;
	return -1;
}

/* A lease made for a new session: its first event creates the session and binds the
 * lease, in this transaction, so that of two racing first events only one creates it;
 * later events continue that session. */
static int resolve_lease_session(struct crab_store *st, struct ingest_job *j)
{
	char bound[CRAB_STORE_ID_MAX];
	int rc = crab_store_lease_session(st, j->bind_lease_id, bound);

	if (rc <= 0)
		return -1;
	if (strcmp(bound, "new") == 0) {
		if (j->mode == CRAB_SESSION_GIVEN)
			return session_forbidden(j, "this lease is for a new session");
		if (session_create(st, j) != 0 ||
		    crab_store_lease_bind_session(st, j->bind_lease_id, j->session_id) != 0)
			return -1;
		return 0;
	}
	if (j->mode == CRAB_SESSION_NEW ||
	    (j->mode == CRAB_SESSION_GIVEN && strcmp(j->given_session_id, bound) != 0))
		return session_forbidden(j, "this lease is bound to another session");
	free(j->given_session_id);
	j->given_session_id = xstrdup(bound);
	j->mode = CRAB_SESSION_GIVEN;
	free(j->bind_lease_id); /* bound already: nothing to bind */
	j->bind_lease_id = NULL;
	return 1;
}

static int resolve_session(struct crab_store *st, struct ingest_job *j)
{
	struct crab_store_session s;
	int rc;

	if (j->bind_lease_id != NULL && (rc = resolve_lease_session(st, j)) <= 0)
		return rc;

	switch (j->mode) {
	case CRAB_SESSION_GIVEN:
		rc = crab_store_session_get(st, j->route.tenant_id, j->given_session_id, &s);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return session_forbidden(j, "the session is not one of this tenant's");
		if (strcmp(s.status, "open") != 0)
			return session_forbidden(j, "the session is closed");
		crab_strlcpy(j->session_id, s.id, sizeof(j->session_id));
		/* A session keeps the agent it began with, whoever continues it. */
		if (strcmp(s.agent_id, j->route.agent_id) != 0) {
			free(j->route.agent_id);
			j->route.agent_id = xstrdup(s.agent_id);
		}
		return 0;
	case CRAB_SESSION_CURRENT:
		rc = crab_store_binding_current(st, j->route.tenant_id, j->route.runtime_key,
		    j->session_id);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		/* no current session yet: create one */
		/* FALLTHROUGH */
	case CRAB_SESSION_NEW:
		return session_create(st, j);
	}
	return -1;
}

/* An internal event without target runs where the conversation last was: the given
 * session's channel, else the actor's last channel with that agent, else the tenant's
 * (PROTOCOLS.md §1). Then it is routed like a message from that channel. */
static int find_target(struct crab_store *st, struct ingest_job *j)
{
	struct crab_store_channel ch;
	struct crab_event_fields in = {.tenant_id = j->fixed_tenant, .agent_id = j->fixed_agent,
		.actor_id = j->actor_id};
	int rc = 0;

	if (j->given_session_id != NULL)
		rc = crab_store_session_channel(st, j->fixed_tenant, j->given_session_id, &ch);
	if (rc == 0 && j->actor_id != NULL)
		rc = crab_store_last_active_get(st, j->fixed_tenant, j->fixed_agent, j->actor_id, &ch);
	if (rc == 0)
		rc = crab_store_last_active_get(st, j->fixed_tenant, j->fixed_agent, "", &ch);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		j->platform = xstrdup(ch.platform);
		j->channel_id = xstrdup(ch.channel_id);
		j->thread_id = ch.thread_id[0] ? xstrdup(ch.thread_id) : NULL;
		j->target = crab_store_channel_json(ch.platform, ch.channel_id, j->thread_id);
	} else {
		/* nowhere to answer: the turn runs and is stored, nothing goes out */
		j->platform = xstrdup("");
		j->channel_id = xstrdup("");
	}
	if (j->actor_id == NULL)
		j->actor_id = xstrdup("");
	in.platform = j->platform;
	in.channel_id = j->channel_id;
	in.thread_id = j->thread_id;
	if (crab_router_resolve(j->router, &in, &j->route, &j->err) != 0) {
		j->failed = 1;
		return -1;
	}
	return 0;
}

static int record_channel(struct crab_store *st, struct ingest_job *j)
{
	struct crab_store_channel ch = {0};

	if (crab_strlcpy(ch.platform, j->platform, sizeof(ch.platform)) >= sizeof(ch.platform) ||
	    crab_strlcpy(ch.channel_id, j->channel_id, sizeof(ch.channel_id)) >=
		sizeof(ch.channel_id))
		return -1;
	crab_strlcpy(ch.thread_id, j->thread_id ? j->thread_id : "", sizeof(ch.thread_id));
	return crab_store_last_active_set(st, j->route.tenant_id, j->route.agent_id, j->actor_id,
	    j->session_id, &ch, j->now);
}

static int ingest_run(struct crab_store *st, struct crab_store_job *job)
{
	struct ingest_job *j = (struct ingest_job *)job;
	struct crab_store_idem first;
	struct crab_store_event ev;
	int rc;

	if (j->find_target && j->route.tenant_id == NULL && find_target(st, j) != 0)
		return -1;
	if (resolve_session(st, j) != 0)
		return -1;
	rc = crab_store_idem_claim(st, j->route.tenant_id, j->idempotency_key, j->event_id,
	    j->session_id, j->now, &first);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		/* Seen before: answer with the first event's ids and undo this job's writes
		 * (a session it may have created). */
		j->duplicate = 1;
		crab_strlcpy(j->result_event_id, first.event_id, sizeof(j->result_event_id));
		crab_strlcpy(j->session_id, first.session_id, sizeof(j->session_id));
		return -1;
	}
	ev = (struct crab_store_event){
		.id = j->event_id, .tenant_id = j->route.tenant_id, .agent_id = j->route.agent_id,
		.session_id = j->session_id, .type = j->type,
		.idempotency_key = j->idempotency_key, .producer = j->producer,
		.envelope_json = j->body, .target_json = j->target, .received_at = j->now,
	};
	if (crab_store_event_insert(st, &ev) != 0)
		return -1;
	if (j->channel_message && record_channel(st, j) != 0)
		return -1;
	if (j->turn != NULL && (rc = crab_turn_begin_accepted(st, j->turn, &ev)) < 0)
		return -1;
	j->turn_started = j->turn != NULL && rc == 1;
	crab_strlcpy(j->result_event_id, j->event_id, sizeof(j->result_event_id));
	return 0;
}

/* ---- loop side ---- */

/* 202 {"event_id","session_id","duplicate"}: the one answer of every accepted event. */
static void answer_accepted(struct ingest_job *j)
{
	struct crab_buf b = {0};

	crab_jobj_open(&b);
	crab_jobj_str(&b, "event_id", j->result_event_id);
	crab_jobj_str(&b, "session_id", j->session_id);
	crab_jobj_bool(&b, "duplicate", j->duplicate);
	crab_jobj_close(&b);
	j->answer(j->answer_arg, 202, b.data, b.len);
	crab_buf_free(&b);
}

void crab_gateway_count_refusal(struct crab_gateway *gw, const struct crab_error *err)
{
	int status = crab_error_status(err->code);

	gw->counters.requests_rejected++;
	if (status == 401)
		gw->counters.unauthenticated++;
	else if (status == 403)
		gw->counters.forbidden++;
	else if (strcmp(err->code, "store_unavailable") == 0)
		gw->counters.store_unavailable++;
}

void crab_ingest_answer_error(struct crab_gateway *gw, crab_ingest_answer_fn answer, void *arg,
    const struct crab_error *err)
{
	char *body = crab_error_body(err);

	crab_gateway_count_refusal(gw, err);
	answer(arg, crab_error_status(err->code), body, strlen(body));
	free(body);
}

/* An event refused for who sent it (401, 403) is logged with its producer. */
static void refuse(struct crab_gateway *gw, const char *producer, crab_ingest_answer_fn answer,
    void *arg, const struct crab_error *err)
{
	int status = crab_error_status(err->code);

	if (status == 401 || status == 403)
		log_info("refused an event from %s: %s: %s", producer, err->code, err->message);
	crab_ingest_answer_error(gw, answer, arg, err);
}

/* The store has bound a lease made for a new session: the index follows. */
static void lease_bound(struct crab_gateway *gw, const char *lease_id, const char *session_id)
{
	struct crab_lease *l = crab_lease_table_by_id(gw->leases, lease_id);

	if (l != NULL && l->session_pending) {
		l->session_pending = 0;
		l->session_id = xstrdup(session_id);
	}
}

static void ingest_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct ingest_job *j = (struct ingest_job *)job;
	struct crab_gateway *gw = j->gw;
	struct crab_error err;
	int accepted = status == CRAB_JOB_OK && !j->failed && !j->duplicate;

	if (status == CRAB_JOB_UNAVAILABLE || (status == CRAB_JOB_FAILED && !j->duplicate &&
						 !j->failed)) {
		crab_error_set(&err, "store_unavailable", NULL,
		    "the event could not be stored; send it again");
		crab_ingest_answer_error(gw, j->answer, j->answer_arg, &err);
	} else if (j->failed) {
		refuse(gw, j->producer, j->answer, j->answer_arg, &j->err);
	} else {
		if (j->duplicate) {
			gw->counters.events_duplicate++;
		} else {
			gw->counters.events_accepted++;
			if (j->bind_lease_id != NULL)
				lease_bound(gw, j->bind_lease_id, j->session_id);
		}
		answer_accepted(j);
	}
	/* The producer has its answer; now the turn. The reserved slot: the turn started
	 * in this commit, or the slot goes back (and an accepted event is queued). */
	if (j->turn != NULL)
		crab_turns_reserved_done(gw->turns, j->turn, accepted && j->turn_started,
		    accepted ? j->session_id : NULL, j->event_id);
	else if (accepted)
		crab_turns_accepted(gw->turns, j->session_id, j->event_id);
	ingest_job_free(j);
}

/* The session the producer allows, into the job; -1 with err set. */
static int apply_session(const struct crab_ingest_producer *p, const struct crab_envelope *env,
    struct ingest_job *j, struct crab_error *err)
{
	j->mode = env->session_mode;
	if (p->session_pending) {
		/* decided in the store, where the binding is: resolve_lease_session */
		j->bind_lease_id = xstrdup(p->lease_id);
		if (env->session_mode == CRAB_SESSION_GIVEN)
			j->given_session_id = xstrdup(env->session_id);
	} else if (p->session_id != NULL) {
		if (env->session_mode == CRAB_SESSION_NEW ||
		    (env->session_mode == CRAB_SESSION_GIVEN &&
			strcmp(env->session_id, p->session_id) != 0)) {
			crab_error_set(err, "session_forbidden", "session_id",
			    "this lease is bound to another session");
			return -1;
		}
		j->mode = CRAB_SESSION_GIVEN;
		j->given_session_id = xstrdup(p->session_id);
	} else if (env->session_mode == CRAB_SESSION_GIVEN) {
		j->given_session_id = xstrdup(env->session_id);
	}
	return 0;
}

static const char *json_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Tenant, agent, channel and keys from the producer and the envelope; -1 with err set. */
static int apply_route(struct crab_gateway *gw, const struct crab_ingest_producer *p,
    const struct crab_envelope *env, struct ingest_job *j, struct crab_error *err)
{
	json_t *target = json_object_get(env->json, "target");
	struct crab_event_fields in = {
		.tenant_id = p->trusted ? env->tenant_id : p->tenant_id,
		.agent_id = p->trusted ? env->agent_id : p->agent_id,
	};

	if (env->internal && !p->trusted) {
		crab_error_set(err, "forbidden", "type",
		    "'%s' is an internal event: only operators and internal services produce it",
		    env->type);
		return -1;
	}
	if (!p->trusted && (env->tenant_id != NULL || env->agent_id != NULL)) {
		/* The tenant comes from the lease or the identity mapping, never from input. */
		crab_error_set(err, "forbidden", env->tenant_id ? "tenant_id" : "agent_id",
		    "this producer may not name %s: the gateway derives it",
		    env->tenant_id ? "tenant_id" : "agent_id");
		return -1;
	}
	if (in.agent_id != NULL && crab_config_agent_find(gw->cfg, in.agent_id) == NULL) {
		crab_error_set(err, "forbidden", "agent_id", "no agent '%.64s' here", in.agent_id);
		return -1;
	}
	if (json_is_object(target)) {
		j->platform = xstrdup(json_str(target, "platform"));
		j->channel_id = xstrdup(json_str(target, "channel_id"));
		j->thread_id = json_str(target, "thread_id") ? xstrdup(json_str(target, "thread_id")) :
							       NULL;
	} else if (!env->internal) {
		json_t *src = json_object_get(env->json, "source");
		j->platform = xstrdup(env->platform);
		j->channel_id = xstrdup(env->channel_id);
		j->thread_id = json_str(src, "thread_id") ? xstrdup(json_str(src, "thread_id")) : NULL;
	}
	j->actor_id = env->actor_id ? xstrdup(env->actor_id) : NULL;
	if (j->platform == NULL) {
		/* An internal event without target: the store knows where it goes. */
		j->find_target = 1;
		j->fixed_tenant = xstrdup(in.tenant_id);
		j->fixed_agent = xstrdup(in.agent_id);
		return 0;
	}
	j->target = crab_store_channel_json(j->platform, j->channel_id, j->thread_id);
	if (j->actor_id == NULL)
		j->actor_id = xstrdup("");
	in.platform = j->platform;
	in.channel_id = j->channel_id;
	in.actor_id = j->actor_id;
	in.thread_id = j->thread_id;
	return crab_router_resolve(gw->router, &in, &j->route, err);
}

void crab_ingest(struct crab_gateway *gw, const char *body, size_t len,
    const struct crab_ingest_producer *producer, crab_ingest_answer_fn answer, void *arg)
{
	struct ingest_job *j;
	struct crab_envelope env;
	struct crab_error err;

	if (crab_envelope_parse(body, len, &env, &err) != 0) {
		crab_ingest_answer_error(gw, answer, arg, &err);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	if (apply_session(producer, &env, j, &err) != 0 ||
	    apply_route(gw, producer, &env, j, &err) != 0 ||
	    (producer->peer_fp != NULL &&
		!crab_peer_may_produce(gw->peers, producer->peer_fp, env.type,
		    j->route.tenant_id ? j->route.tenant_id : j->fixed_tenant, &err))) {
		crab_envelope_release(&env);
		ingest_job_free(j);
		refuse(gw, producer->id, answer, arg, &err);
		return;
	}
	j->job.run = ingest_run;
	j->job.done = ingest_done;
	j->gw = gw;
	j->router = gw->router;
	j->answer = answer;
	j->answer_arg = arg;
	j->turn = crab_turns_reserve(gw->turns);
	j->now = crab_clock_now_ms();
	j->channel_message = !env.internal;
	crab_id_new("evt", j->event_id);
	crab_id_new("ses", j->fresh_session_id);
	j->type = xstrdup(env.type);
	j->idempotency_key = xstrdup(env.idempotency_key ? env.idempotency_key : j->event_id);
	j->producer = xstrdup(producer->id);
	/* The envelope is stored as received (validated); the defaulted idempotency key
	 * lives in its own column. */
	j->body = xstrndup(body, len);
	if (j->turn != NULL) /* it may start at acceptance: spare it parsing the body again */
		crab_turn_keep_envelope(j->turn, env.json);
	crab_envelope_release(&env);
	crab_storeq_submit(gw->storeq, &j->job);
}
