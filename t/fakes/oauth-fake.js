#!/usr/bin/env node
// t/fakes/oauth-fake.js: a fake subscription-auth provider for the tests, after
// shared/protocols/subscription-auth.md: an OAuth 2.0 server (authorize with PKCE and the
// paste-code page, token with authorization_code and refresh_token grants and refresh
// token rotation, revoke), GitHub's device flow, Copilot's token exchange, and a minimal
// Anthropic Messages endpoint that takes only the bearer tokens issued here, live and
// unexpired (so expiry and revocation are real to the gateway). Node.js 18+, built-in
// modules only. t/fakes/README.md describes the options and the /_fake/* endpoints.
//
//   node t/fakes/oauth-fake.js --port-file FILE [--port N] [--parent-pid PID]
//        [--client-id ID] [--body json|form] [--expires-in S] [--token-secret S]
//        [--token-delay-ms N] [--device-interval S] [--device-pending N]
//        [--device-expires-in S] [--exchange-expires-in S] [--exchange-refresh-in S]
'use strict';

const http = require('http');
const crypto = require('crypto');
const common = require('./fake-common');

const opt = {
	portFile: null, port: 0, parentPid: 0, clientId: 'crab-test-client', body: 'json',
	expiresIn: 28800, tokenSecret: crypto.randomBytes(32).toString('hex'), tokenDelayMs: 0,
	deviceInterval: 5, devicePending: 2, deviceExpiresIn: 900, exchangeExpiresIn: 1800,
	exchangeRefreshIn: 1500,
};
{
	const str = ({ a, next, usage }) => {
		const v = next();
		if (v === undefined || v === '') usage(`${a} needs a value`);
		return v;
	};
	const num = (key) => ({ a, num: n }) => { opt[key] = n(a); };
	common.parseArgs('oauth-fake', 'usage: oauth-fake.js --port-file FILE [--port N] [--parent-pid PID] ' +
		'[--client-id ID] [--body json|form] [--expires-in S] [--token-secret S] ' +
		'[--token-delay-ms N] [--device-interval S] [--device-pending N] [--device-expires-in S] ' +
		'[--exchange-expires-in S] [--exchange-refresh-in S]\n', opt, {
		'--port-file': (o) => { opt.portFile = str(o); },
		'--client-id': (o) => { opt.clientId = str(o); },
		'--body': (o) => { opt.body = str(o); if (!['json', 'form'].includes(opt.body)) o.usage('--body is json or form'); },
		'--expires-in': num('expiresIn'),
		'--token-secret': (o) => { opt.tokenSecret = str(o); },
		'--token-delay-ms': num('tokenDelayMs'),
		'--device-interval': num('deviceInterval'),
		'--device-pending': num('devicePending'),
		'--device-expires-in': num('deviceExpiresIn'),
		'--exchange-expires-in': num('exchangeExpiresIn'),
		'--exchange-refresh-in': num('exchangeRefreshIn'),
	});
}

const BODY_LIMIT = 1024 * 1024;
const CODE_TTL_MS = 10 * 60 * 1000;
const now = () => Date.now();
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const random = (n) => crypto.randomBytes(n).toString('base64url');
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const hmac = (s) => crypto.createHmac('sha256', opt.tokenSecret).update(s).digest();

// ---- state ----

const codes = new Map();     // authorization code -> {clientId, redirectUri, challenge, state, scope, expires, used}
const refreshes = new Map(); // refresh token -> {live, scope}
const accesses = new Map();  // access token -> {exp (ms), live}
const logins = new Map();    // gho_ login -> {live}
const shorts = new Map();    // copilot token -> {exp (ms), live}
const devices = new Map();   // device_code -> {userCode, clientId, scope, polls, expires, interval, lastPoll, denied}
const issued = [];           // {kind, token, sha256}
let records = [];
let seq = 0;
let failNext = [];           // statuses for the next /token answers (POST /_fake/fail)
let denyNext = false;
let refuseAll = false;      // POST /_fake/refuse: the Messages API refuses every token

function freshStats() {
	return {
		authorize: 0, token: {}, token_total: 0, token_ok: 0, token_errors: {}, revoke: 0,
		device_code: 0, device_poll: 0, slow_down: 0, exchange: 0, exchange_ok: 0,
		exchange_401: 0, messages: 0, messages_ok: 0, messages_401: 0,
	};
}
let stats = freshStats();

function issue(kind, token) {
	issued.push({ kind, token, sha256: sha256(token) });
	return token;
}

// An access token that a model fake can verify alone: the payload and its HMAC.
function newAccess(expiresInS) {
	const payload = b64url(JSON.stringify({ kind: 'access', exp: now() + expiresInS * 1000, jti: random(9) }));
	const token = `fake-oat01-${payload}.${b64url(hmac(payload))}`;
	accesses.set(token, { exp: now() + expiresInS * 1000, live: true });
	return issue('access', token);
}

function newRefresh(scope) {
	const token = `fake-ort01-${random(32)}`;
	refreshes.set(token, { live: true, scope });
	return issue('refresh', token);
}

function tokenPair(scope) {
	return {
		access_token: newAccess(opt.expiresIn), refresh_token: newRefresh(scope), token_type: 'Bearer',
		expires_in: opt.expiresIn, scope: scope || 'user:inference user:profile',
		account: { uuid: '00000000-0000-4000-8000-000000000001', email_address: 'tester@example.test' },
		organization: { uuid: '00000000-0000-4000-8000-000000000002', name: 'Fake Org' },
	};
}

// ---- helpers ----

function send(res, status, obj, headers) {
	if (typeof obj !== 'string') return common.replyJson(res, status, obj, headers);
	res.writeHead(status, Object.assign({
		'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(obj)),
	}, headers || {}));
	res.end(obj);
}

function oauthError(res, status, error, description) {
	stats.token_errors[error] = (stats.token_errors[error] || 0) + 1;
	send(res, status, { error, error_description: description });
}

// The body as the content type says; null when it is not what was declared.
function parseBody(req, raw) {
	const ct = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
	if (ct === 'application/json') {
		try { const v = JSON.parse(raw); return v && typeof v === 'object' && !Array.isArray(v) ? { kind: 'json', v } : null; } catch (e) { return null; }
	}
	if (ct === 'application/x-www-form-urlencoded') {
		return { kind: 'form', v: Object.fromEntries(new URLSearchParams(raw)) };
	}
	return null;
}

function bearer(req) {
	const m = /^(?:Bearer|token)\s+(\S+)$/i.exec(req.headers.authorization || '');
	return m ? m[1] : null;
}

// ---- OAuth ----

function authorize(req, res, url) {
	stats.authorize++;
	const q = url.searchParams;
	const bad = (what) => send(res, 400, `<!doctype html><title>Error</title><p>Invalid request: ${what}</p>`);
	if (q.get('client_id') !== opt.clientId) return bad('unknown client_id');
	if (q.get('response_type') !== 'code') return bad('response_type must be code');
	const redirectUri = q.get('redirect_uri');
	if (!redirectUri) return bad('redirect_uri is required');
	if (q.get('code_challenge_method') !== 'S256') return bad('code_challenge_method must be S256');
	const challenge = q.get('code_challenge') || '';
	if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) return bad('code_challenge must be 43 base64url characters');
	const state = q.get('state');
	if (!state) return bad('state is required');
	const code = random(24);
	codes.set(code, {
		clientId: q.get('client_id'), redirectUri, challenge, state, scope: q.get('scope') || '',
		expires: now() + CODE_TTL_MS, used: false,
	});
	if (q.get('code') === 'true') { // the paste-code page: CODE#STATE to copy
		return send(res, 200, '<!doctype html><title>Authorization code</title>' +
			`<p>Paste this code into the application:</p><code id="code">${code}#${state}</code>`);
	}
	const to = new URL(redirectUri);
	to.searchParams.set('code', code);
	to.searchParams.set('state', state);
	res.writeHead(302, { location: to.toString(), 'content-length': '0' });
	res.end();
}

function token(req, res, raw) {
	const body = parseBody(req, raw);
	const grant = body ? body.v.grant_type : undefined;
	stats.token_total++;
	stats.token[grant || 'none'] = (stats.token[grant || 'none'] || 0) + 1;
	if (failNext.length > 0) {
		const status = failNext.shift();
		return send(res, status, status === 429 ?
			{ error: 'rate_limited', error_description: 'Too many requests (fake)' } :
			{ error: 'server_error', error_description: 'The server failed (fake)' },
		status === 429 ? { 'retry-after': '1' } : {});
	}
	if (!body || body.kind !== opt.body) return oauthError(res, 400, 'invalid_request', 'Invalid request format');
	const p = body.v;
	if (p.client_id !== opt.clientId) {
		return p.client_id === undefined ? oauthError(res, 400, 'invalid_request', 'Invalid request format') :
			oauthError(res, 401, 'invalid_client', 'Client authentication failed');
	}
	if (grant === 'authorization_code') {
		const c = codes.get(p.code);
		if (!c || c.used || c.expires < now()) return oauthError(res, 400, 'invalid_grant', 'Invalid authorization code');
		c.used = true; // single use, whatever follows
		if (p.redirect_uri !== c.redirectUri) return oauthError(res, 400, 'invalid_grant', 'redirect_uri does not match');
		if (typeof p.code_verifier !== 'string' || !/^[A-Za-z0-9._~-]{43,128}$/.test(p.code_verifier) ||
			b64url(crypto.createHash('sha256').update(p.code_verifier).digest()) !== c.challenge) {
			return oauthError(res, 400, 'invalid_grant', 'Invalid code verifier');
		}
		if (p.state !== undefined && p.state !== c.state) return oauthError(res, 400, 'invalid_grant', 'Invalid state');
		stats.token_ok++;
		return send(res, 200, tokenPair(c.scope));
	}
	if (grant === 'refresh_token') {
		const r = refreshes.get(p.refresh_token);
		if (!r || !r.live) return oauthError(res, 400, 'invalid_grant', 'Refresh token not found or invalid');
		r.live = false; // rotation: the old one dies with its first use
		stats.token_ok++;
		return send(res, 200, tokenPair(r.scope));
	}
	return oauthError(res, 400, 'unsupported_grant_type', `Grant type ${grant} is not supported`);
}

function revoke(req, res, raw) {
	stats.revoke++;
	const body = parseBody(req, raw);
	const t = body ? body.v.token : undefined;
	if (refreshes.has(t)) refreshes.get(t).live = false;
	if (accesses.has(t)) accesses.get(t).live = false;
	send(res, 200, {}); // RFC 7009: 200 whether or not the token was known
}

// ---- GitHub's device flow and Copilot's exchange ----

function deviceCode(req, res, raw) {
	stats.device_code++;
	const body = parseBody(req, raw);
	if (!body || body.kind !== 'form') return send(res, 400, { error: 'invalid_request', error_description: 'form body expected' });
	if (body.v.client_id !== opt.clientId) return send(res, 200, { error: 'incorrect_client_credentials', error_description: 'The client_id is not valid.' });
	const dc = random(30);
	const letters = 'BCDFGHJKLMNPQRSTVWXZ';
	const pick = () => Array.from(crypto.randomBytes(4), (b) => letters[b % letters.length]).join('');
	const userCode = `${pick()}-${pick()}`;
	devices.set(dc, {
		userCode, clientId: body.v.client_id, scope: body.v.scope || '', polls: 0,
		expires: now() + opt.deviceExpiresIn * 1000, interval: opt.deviceInterval, lastPoll: 0,
	});
	const host = req.headers.host;
	send(res, 200, {
		device_code: dc, user_code: userCode, verification_uri: `http://${host}/login/device`,
		expires_in: opt.deviceExpiresIn, interval: opt.deviceInterval,
	});
}

// GitHub answers the device grant's errors with HTTP 200 when asked for JSON.
function deviceToken(req, res, raw) {
	const body = parseBody(req, raw);
	const p = body ? body.v : {};
	stats.token_total++;
	stats.token[p.grant_type || 'none'] = (stats.token[p.grant_type || 'none'] || 0) + 1;
	if (!body || body.kind !== 'form') return send(res, 400, { error: 'invalid_request' });
	if (p.grant_type !== 'urn:ietf:params:oauth:grant-type:device_code') return send(res, 200, { error: 'unsupported_grant_type' });
	if (p.client_id !== opt.clientId) return send(res, 200, { error: 'incorrect_client_credentials' });
	stats.device_poll++;
	const d = devices.get(p.device_code);
	if (!d) return send(res, 200, { error: 'bad_verification_code', error_description: 'The device_code provided is not valid.' });
	if (d.expires < now()) return send(res, 200, { error: 'expired_token', error_description: 'The device_code has expired.' });
	if (denyNext) { denyNext = false; devices.delete(p.device_code); return send(res, 200, { error: 'access_denied' }); }
	const since = now() - d.lastPoll;
	d.lastPoll = now();
	if (d.polls > 0 && since < d.interval * 1000 - 300) {
		stats.slow_down++;
		d.interval += 5;
		return send(res, 200, { error: 'slow_down', error_description: 'Too many requests.', interval: d.interval });
	}
	d.polls++;
	if (d.polls <= opt.devicePending) return send(res, 200, { error: 'authorization_pending', error_description: 'The authorization request is still pending.' });
	devices.delete(p.device_code);
	const login = issue('login', `gho_${random(27)}`);
	logins.set(login, { live: true });
	stats.token_ok++;
	send(res, 200, { access_token: login, token_type: 'bearer', scope: d.scope });
}

function exchange(req, res) {
	stats.exchange++;
	const t = bearer(req);
	const l = t ? logins.get(t) : undefined;
	if (!l || !l.live) {
		stats.exchange_401++;
		return send(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
	}
	const exp = Math.floor(now() / 1000) + opt.exchangeExpiresIn;
	const base = `tid=${random(12)};exp=${exp};sku=fake_individual;proxy-ep=proxy.individual.githubcopilot.com`;
	const short = issue('short', `${base};8kp=1:${hmac(base).toString('hex')}`);
	shorts.set(short, { exp: exp * 1000, live: true });
	stats.exchange_ok++;
	send(res, 200, {
		token: short, expires_at: exp, refresh_in: opt.exchangeRefreshIn,
		endpoints: { api: `http://${req.headers.host}` }, chat_enabled: true, sku: 'fake_individual',
	});
}

// ---- a minimal Anthropic Messages API on the tokens issued here ----

function textOf(content) {
	if (typeof content === 'string') return content;
	if (Array.isArray(content)) return content.filter((b) => b && b.type === 'text').map((b) => b.text).join('\n');
	return '';
}

function anthropicError(res, status, type, message) {
	send(res, status, { type: 'error', error: { type, message }, request_id: `req_${random(12)}` },
		{ 'request-id': `req_${random(12)}` });
}

function messages(req, res, raw) {
	stats.messages++;
	const t = bearer(req);
	if (!t) return anthropicError(res, 401, 'authentication_error', 'invalid x-api-key');
	const a = accesses.get(t) || shorts.get(t);
	if (!a || !a.live || a.exp <= now() || refuseAll) {
		stats.messages_401++;
		return anthropicError(res, 401, 'authentication_error', a && a.live ? 'OAuth token has expired.' : 'Invalid bearer token');
	}
	if (!req.headers['anthropic-version']) return anthropicError(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
	let body;
	try { body = JSON.parse(raw); } catch (e) { body = null; }
	if (!body || typeof body.model !== 'string' || !Number.isInteger(body.max_tokens) || !Array.isArray(body.messages)) {
		return anthropicError(res, 400, 'invalid_request_error', 'model, max_tokens and messages are required');
	}
	stats.messages_ok++;
	const users = body.messages.filter((m) => m && m.role === 'user');
	const text = `echo: ${users.length ? textOf(users[users.length - 1].content) : ''}`;
	const id = `msg_${random(12)}`;
	const usage = { input_tokens: Math.ceil(raw.length / 4), output_tokens: Math.ceil(text.length / 4) };
	if (!body.stream) {
		return send(res, 200, {
			id, type: 'message', role: 'assistant', model: body.model, content: [{ type: 'text', text }],
			stop_reason: 'end_turn', stop_sequence: null, usage,
		}, { 'request-id': `req_${random(12)}` });
	}
	res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': `req_${random(12)}` });
	const ev = (name, data) => res.write(`event: ${name}\ndata: ${JSON.stringify(Object.assign({ type: name }, data))}\n\n`);
	ev('message_start', { message: { id, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.input_tokens, output_tokens: 1 } } });
	ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
	ev('ping', {});
	for (const piece of text.match(/\S+\s*/g) || ['']) ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } });
	ev('content_block_stop', { index: 0 });
	ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
	ev('message_stop', {});
	res.end();
}

// ---- control ----

function control(req, res, path, raw) {
	const key = `${req.method} ${path}`;
	let body = {};
	try { body = raw ? JSON.parse(raw) : {}; } catch (e) { body = {}; }
	switch (key) {
	case 'GET /_fake/stats': return send(res, 200, stats);
	case 'DELETE /_fake/stats': stats = freshStats(); return send(res, 200, { cleared: true });
	case 'GET /_fake/requests': return send(res, 200, records);
	case 'DELETE /_fake/requests': records = []; return send(res, 200, { cleared: true });
	case 'GET /_fake/issued': return send(res, 200, { tokens: issued });
	case 'POST /_fake/revoke': { // the user revoked the app: every grant dies
		let n = 0;
		for (const m of [refreshes, accesses, logins, shorts]) for (const v of m.values()) if (v.live) { v.live = false; n++; }
		return send(res, 200, { revoked: n });
	}
	case 'POST /_fake/expire': { // every short-lived token expires now; logins stay
		let n = 0;
		for (const m of [accesses, shorts]) for (const v of m.values()) if (v.live && v.exp > now()) { v.exp = now(); n++; }
		return send(res, 200, { expired: n });
	}
	case 'POST /_fake/fail': {
		const status = Number.isInteger(body.status) ? body.status : 503;
		const count = Number.isInteger(body.count) ? body.count : 1;
		for (let i = 0; i < count; i++) failNext.push(status);
		return send(res, 200, { queued: failNext.length });
	}
	case 'POST /_fake/device/deny': denyNext = true; return send(res, 200, { deny: true });
	case 'POST /_fake/refuse': refuseAll = body.on !== false; return send(res, 200, { refuse: refuseAll });
	default: return send(res, 404, { error: 'not_found', error_description: `${req.method} ${path}` });
	}
}

// ---- the server ----

function route(req, res, url, raw) {
	const key = `${req.method} ${url.pathname}`;
	switch (key) {
	case 'GET /authorize': return authorize(req, res, url);
	case 'POST /token': return setTimeout(() => token(req, res, raw), opt.tokenDelayMs);
	case 'POST /revoke': return revoke(req, res, raw);
	case 'POST /login/device/code': return deviceCode(req, res, raw);
	case 'POST /login/oauth/access_token': return setTimeout(() => deviceToken(req, res, raw), opt.tokenDelayMs);
	case 'GET /copilot_internal/v2/token': return setTimeout(() => exchange(req, res), opt.tokenDelayMs);
	case 'POST /v1/messages': return messages(req, res, raw);
	default: return send(res, 404, { error: 'not_found', error_description: key });
	}
}

function handle(req, res) {
	const url = new URL(req.url, 'http://fake.invalid');
	const isControl = url.pathname.startsWith('/_fake/');
	const chunks = [];
	let size = 0;
	res.on('error', () => {});
	req.on('error', () => {});
	req.on('data', (c) => {
		size += c.length;
		if (size <= BODY_LIMIT) chunks.push(c);
	});
	req.on('end', () => {
		if (size > BODY_LIMIT) return send(res, 413, { error: 'request_too_large' });
		const raw = Buffer.concat(chunks).toString('utf8');
		if (isControl) return control(req, res, url.pathname, raw);
		if (url.pathname !== '/v1/messages') {
			records.push({ seq: ++seq, at: now(), method: req.method, path: req.url, headers: req.headers, body: raw });
		}
		route(req, res, url, raw);
	});
}

const server = http.createServer({ keepAlive: true }, handle);
server.keepAliveTimeout = 65000;
server.on('clientError', (err, socket) => socket.destroy());
common.listen(server, 'oauth-fake', opt);
