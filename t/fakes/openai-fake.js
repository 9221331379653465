#!/usr/bin/env node
// t/fakes/openai-fake.js: a fake OpenAI Chat Completions server for the tests and for
// `make bench` (the "zero-latency model"). Node.js 18+, built-in modules only.
// The wire format follows shared/protocols/openai-chat.md; t/fakes/README.md describes
// the behaviour steps and the /_fake/* control endpoints.
//
//   node t/fakes/openai-fake.js --port-file FILE [--port N] [--api-key KEY]
//        [--delay-ms N] [--no-record] [--max-records N] [--parent-pid PID]
'use strict';

const { performance } = require('perf_hooks');
const common = require('./fake-common');

// ---- command line ----

const opt = { portFile: null, port: 0, apiKey: null, delayMs: 0, record: true, maxRecords: 100000, parentPid: 0 };
common.parseArgs('openai-fake', 'usage: openai-fake.js --port-file FILE [--port N] [--api-key KEY] ' +
	'[--delay-ms N] [--no-record] [--max-records N] [--parent-pid PID]\n', opt, {
	'--port-file': ({ next, usage }) => { opt.portFile = next(); if (!opt.portFile) usage('--port-file needs a file'); },
	'--api-key': ({ next, usage }) => { opt.apiKey = next(); if (opt.apiKey === undefined) usage('--api-key needs a key'); },
	'--delay-ms': ({ a, num }) => { opt.delayMs = num(a); },
	'--no-record': () => { opt.record = false; },
	'--max-records': ({ a, num }) => { opt.maxRecords = num(a); },
});

const BODY_LIMIT = 8 * 1024 * 1024;
const now = () => performance.timeOrigin + performance.now();

// ---- state ----

// Ids: a random per-process prefix and a counter are unique and cost nothing per request.
const idPrefix = Math.random().toString(36).slice(2, 10);
let idCounter = 0;
const nextId = () => `${idPrefix}${(++idCounter).toString(36)}`;

// ---- responses ----

// Headers every API answer carries (shared/protocols/openai-chat.md section 4).
function apiHeaders(ctx, status, extra) {
	const h = {
		'x-request-id': `req_${nextId()}`,
		'openai-processing-ms': String(Math.max(0, Math.round(now() - ctx.start))),
		'openai-version': '2020-10-01',
		'openai-organization': 'user-fake',
		'x-ratelimit-limit-requests': '5000',
		'x-ratelimit-limit-tokens': '160000',
		'x-ratelimit-remaining-requests': status === 429 ? '0' : '4999',
		'x-ratelimit-remaining-tokens': status === 429 ? '0' : '159976',
		'x-ratelimit-reset-requests': status === 429 ? '1s' : '12ms',
		'x-ratelimit-reset-tokens': status === 429 ? '1s' : '9ms',
	};
	if (extra) Object.assign(h, extra);
	return h;
}

function sendJson(ctx, status, obj, extra) {
	if (ctx.gone) return;
	const body = JSON.stringify(obj);
	const h = apiHeaders(ctx, status, extra);
	h['content-type'] = 'application/json';
	h['content-length'] = String(Buffer.byteLength(body));
	ctx.setStatus(status);
	ctx.res.writeHead(status, h);
	ctx.res.end(body);
}

function errorBody(message, type, code, param) {
	return { error: { message, type, param: param === undefined ? null : param, code: code === undefined ? null : code } };
}

function maskKey(key) {
	if (key.length <= 8) return `${key.slice(0, 2)}***`;
	return `${key.slice(0, 6)}***${key.slice(-4)}`;
}

// The documented error body for STATUS; a step's "type"/"code"/"message" override it.
function stepError(status, step, model) {
	let message, type, code = null, param = null;
	switch (status) {
	case 400:
		message = 'Invalid request (fake).'; type = 'invalid_request_error'; break;
	case 401:
		message = 'Incorrect API key provided: sk-fak***. You can find your API key at https://platform.openai.com/account/api-keys.';
		type = 'invalid_request_error'; code = 'invalid_api_key'; break;
	case 403:
		message = 'Country, region, or territory not supported'; type = 'request_forbidden';
		code = 'unsupported_country_region_territory'; break;
	case 404:
		message = `The model \`${model}\` does not exist or you do not have access to it.`;
		type = 'invalid_request_error'; code = 'model_not_found'; break;
	case 408:
		message = 'Request timed out (fake).'; type = 'timeout'; code = 'timeout'; break;
	case 409:
		message = 'Conflict (fake).'; type = 'invalid_request_error'; code = 'conflict'; break;
	case 429:
		if (step.type === 'insufficient_quota' || step.code === 'insufficient_quota') {
			message = 'You exceeded your current quota, please check your plan and billing details.';
			type = 'insufficient_quota'; code = 'insufficient_quota';
		} else {
			message = `Rate limit reached for ${model} in organization org-fake on requests per min (RPM): ` +
				'Limit 5000, Used 5000, Requested 1. Please try again in 1s.';
			type = 'requests'; code = 'rate_limit_exceeded';
		}
		break;
	case 500:
		message = 'The server had an error while processing your request. Sorry about that!';
		type = 'server_error'; code = 'server_error'; break;
	case 502:
		message = 'Bad gateway.'; type = 'server_error'; code = 'bad_gateway'; break;
	case 503:
		message = 'The engine is currently overloaded, please try again later.';
		type = 'server_error'; code = 'service_unavailable'; break;
	default:
		message = `Fake error ${status}.`;
		type = status >= 500 ? 'server_error' : 'invalid_request_error';
	}
	if (typeof step.type === 'string') type = step.type;
	if (step.code !== undefined) code = step.code;
	if (typeof step.message === 'string') message = step.message;
	return errorBody(message, type, code, param);
}

// ---- request content ----

function partText(content) {
	if (typeof content === 'string') return content;
	if (Array.isArray(content)) {
		return content.filter((p) => p && p.type === 'text' && typeof p.text === 'string')
			.map((p) => p.text).join('\n');
	}
	return '';
}

function lastUserText(messages) {
	for (let i = messages.length - 1; i >= 0; i--) {
		const m = messages[i];
		if (m && m.role === 'user') return partText(m.content);
	}
	return null;
}

// findMarker TEXT: the first "[fake:{...}]" in TEXT as {step, start, end} (end just past
// the "]"), or null. The object is found by scanning for its matching "}" outside JSON
// strings; if that does not parse, every later "}" is tried in turn.
const MARK = '[fake:';
function findMarker(text) {
	let from = 0;
	for (;;) {
		const at = text.indexOf(MARK, from);
		if (at < 0) return null;
		const open = at + MARK.length;
		from = open;
		if (text[open] !== '{') continue;
		const candidates = [];
		let depth = 0, inStr = false, esc = false;
		for (let i = open; i < text.length; i++) {
			const c = text[i];
			if (inStr) {
				if (esc) esc = false;
				else if (c === '\\') esc = true;
				else if (c === '"') inStr = false;
			} else if (c === '"') inStr = true;
			else if (c === '{') depth++;
			else if (c === '}' && --depth === 0) { candidates.push(i); break; }
		}
		for (let i = text.indexOf('}', open); i >= 0; i = text.indexOf('}', i + 1)) {
			if (i !== candidates[0]) candidates.push(i);
		}
		for (const close of candidates) {
			let step;
			try { step = JSON.parse(text.slice(open, close + 1)); } catch (e) { continue; }
			if (!step || typeof step !== 'object' || Array.isArray(step)) continue;
			const end = text[close + 1] === ']' ? close + 2 : close + 1;
			return { step, start: at, end };
		}
	}
}

function tokens(bytes) {
	return Math.max(1, Math.ceil(bytes / 4));
}

// Word-boundary pieces: "echo: hi there" -> ["echo: ", "hi ", "there"].
function textPieces(text) {
	if (text === '') return [];
	const p = text.match(/\s*\S+\s*/g);
	return p && p.join('') === text ? p : [text];
}

// 2 or 3 pieces of a tool-call arguments string (fewer only if it is that short).
function argPieces(s) {
	const cps = Array.from(s);
	if (cps.length < 2) return cps.length ? [s] : [];
	const n = cps.length >= 3 ? 3 : 2;
	const size = Math.ceil(cps.length / n);
	const out = [];
	for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
	return out;
}

function toolCallsOf(step) {
	if (!Array.isArray(step.tool_calls)) return null;
	return step.tool_calls.map((tc) => ({
		id: typeof tc.id === 'string' ? tc.id : `call_${nextId()}`,
		type: 'function',
		function: {
			name: String(tc.name !== undefined ? tc.name : (tc.function && tc.function.name) || 'tool'),
			arguments: (() => {
				const a = tc.arguments !== undefined ? tc.arguments : (tc.function && tc.function.arguments);
				if (a === undefined) return '{}';
				return typeof a === 'string' ? a : JSON.stringify(a);
			})(),
		},
	}));
}

// ---- the chat completion ----

function completion(ctx, body, step) {
	const model = body.model;
	const stream = body.stream === true;
	const calls = toolCallsOf(step);
	let text;
	if (typeof step.text === 'string') text = step.text;
	else if (calls) text = null;
	else {
		let t = lastUserText(body.messages) || '';
		const mk = ctx.marker;
		if (mk) t = (t.slice(0, mk.start) + t.slice(mk.end)).replace(/\s+/g, ' ').trim();
		text = `echo: ${t}`;
	}
	const finish = typeof step.finish_reason === 'string' ? step.finish_reason : (calls ? 'tool_calls' : 'stop');
	const promptTokens = tokens(ctx.bodyBytes);
	let outBytes = text ? Buffer.byteLength(text) : 0;
	if (calls) for (const c of calls) outBytes += Buffer.byteLength(c.function.arguments) + c.function.name.length;
	const completionTokens = tokens(outBytes);
	const usage = {
		prompt_tokens: promptTokens, completion_tokens: completionTokens,
		total_tokens: promptTokens + completionTokens,
		prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
		completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0,
			accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
	};
	const id = `chatcmpl-${nextId()}`;
	const created = Math.floor(Date.now() / 1000);
	const extra = step.headers && typeof step.headers === 'object' ? { ...step.headers } : null;

	if (!stream) {
		if (step.garbage) return sendRaw(ctx, 200, 'application/json', '{"id": not json', extra);
		const message = { role: 'assistant', content: text, refusal: null, annotations: [] };
		if (calls) message.tool_calls = calls;
		const obj = {
			id, object: 'chat.completion', created, model,
			choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
			usage, service_tier: 'default', system_fingerprint: 'fp_fake',
		};
		if (step.truncate_after_chunks !== undefined) {
			const s = JSON.stringify(obj);
			return sendCut(ctx, 'application/json', Buffer.byteLength(s), [s.slice(0, s.length >> 1)], extra);
		}
		return sendJson(ctx, 200, obj, extra);
	}

	// Streaming: the events as strings, then written out (see streamOut).
	const includeUsage = !!(body.stream_options && body.stream_options.include_usage);
	const head = `{"id":"${id}","object":"chat.completion.chunk","created":${created},` +
		`"model":${JSON.stringify(model)},"system_fingerprint":"fp_fake","choices":[`;
	const tail = includeUsage ? '],"usage":null}' : ']}';
	const chunk = (delta, fin) => `data: ${head}{"index":0,"delta":${JSON.stringify(delta)},` +
		`"logprobs":null,"finish_reason":${fin ? JSON.stringify(fin) : 'null'}}${tail}\n\n`;
	const events = [];
	if (text !== null) {
		events.push(chunk({ role: 'assistant', content: '' }));
		for (const p of textPieces(text)) events.push(chunk({ content: p }));
	}
	if (step.mid_stream_error) {
		if (events.length < 2) events.push(chunk({ content: 'partial' }));
		events.length = Math.min(events.length, 2);
		events.push(`data: ${JSON.stringify(errorBody(
			typeof step.message === 'string' ? step.message : 'The server had an error while processing your request (fake, mid-stream).',
			'server_error', null))}\n\n`);
		return streamOut(ctx, events, step, extra);
	}
	if (calls) {
		calls.forEach((c, index) => {
			const first = { index, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } };
			if (text === null && index === 0) events.push(chunk({ role: 'assistant', content: null, tool_calls: [first] }));
			else events.push(chunk({ tool_calls: [first] }));
			for (const p of argPieces(c.function.arguments)) {
				events.push(chunk({ tool_calls: [{ index, function: { arguments: p } }] }));
			}
		});
	}
	events.push(chunk({}, finish));
	if (includeUsage) events.push(`data: ${head}],"usage":${JSON.stringify(usage)}}\n\n`);
	events.push('data: [DONE]\n\n');
	return streamOut(ctx, events, step, extra);
}

function sendRaw(ctx, status, type, body, extra) {
	if (ctx.gone) return;
	const h = apiHeaders(ctx, status, extra);
	h['content-type'] = type;
	if (type !== 'text/event-stream') h['content-length'] = String(Buffer.byteLength(body));
	ctx.setStatus(status);
	ctx.res.writeHead(status, h);
	ctx.res.end(body);
}

// sendCut: a 200 that promised LEN bytes and stops after PARTS, then the socket is cut.
function sendCut(ctx, type, len, parts, extra) {
	if (ctx.gone) return;
	const h = apiHeaders(ctx, 200, extra);
	h['content-type'] = type;
	if (len !== null) h['content-length'] = String(len);
	ctx.setStatus(200);
	ctx.res.writeHead(200, h);
	const cut = () => { ctx.cut = true; ctx.res.destroy(); };
	if (parts.length === 0) {
		ctx.res.flushHeaders();
		setImmediate(cut);
		return;
	}
	parts.forEach((p, i) => ctx.res.write(p, i === parts.length - 1 ? () => setImmediate(cut) : undefined));
}

function streamOut(ctx, events, step, extra) {
	if (ctx.gone) return;
	if (step.garbage) {
		return sendRaw(ctx, 200, 'text/event-stream',
			'data: {not json\n\ndata: still {{ not json\n\n', extra);
	}
	const sseHeaders = { 'cache-control': 'no-cache', ...(extra || {}) };
	if (step.truncate_after_chunks !== undefined) {
		const n = Math.max(0, Number(step.truncate_after_chunks) | 0);
		const parts = events.filter((e) => e !== 'data: [DONE]\n\n').slice(0, n);
		if (!step.chunk_delay_ms) return sendCut(ctx, 'text/event-stream', null, parts.length ? [parts.join('')] : [], sseHeaders);
		events = parts;
	}
	const delay = Number(step.chunk_delay_ms) || 0;
	const h = apiHeaders(ctx, 200, sseHeaders);
	h['content-type'] = 'text/event-stream; charset=utf-8';
	ctx.setStatus(200);
	ctx.res.writeHead(200, h);
	const cutAtEnd = step.truncate_after_chunks !== undefined;
	if (!delay) { ctx.res.end(events.join('')); return; }
	let i = 0;
	const next = () => {
		if (ctx.gone) return;
		if (i >= events.length) {
			if (cutAtEnd) { ctx.cut = true; ctx.res.destroy(); } else ctx.res.end();
			return;
		}
		ctx.res.write(events[i++]);
		ctx.timer = setTimeout(next, delay);
	};
	next();
}

// ---- the API ----

function pickStep(body) {
	const text = lastUserText(body.messages);
	if (text !== null && text.includes(MARK)) {
		const mk = findMarker(text);
		if (mk) return { step: mk.step, marker: mk };
	}
	if (script.length) return { step: script.shift(), marker: null };
	return { step: null, marker: null };
}

function authorized(req) {
	return opt.apiKey === null || req.headers.authorization === `Bearer ${opt.apiKey}`;
}

function unauthorized(ctx, req) {
	const auth = req.headers.authorization;
	const msg = auth
		? `Incorrect API key provided: ${maskKey(auth.replace(/^Bearer\s+/i, ''))}. You can find your API key at https://platform.openai.com/account/api-keys.`
		: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
	sendJson(ctx, 401, errorBody(msg, 'invalid_request_error', 'invalid_api_key'));
}

function chatCompletions(ctx, req) {
	if (!authorized(req)) return unauthorized(ctx, req);
	let body;
	try { body = JSON.parse(ctx.raw); } catch (e) {
		return sendJson(ctx, 400, errorBody(
			"We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
			'invalid_request_error', null));
	}
	if (!body || typeof body !== 'object' || Array.isArray(body)) {
		return sendJson(ctx, 400, errorBody('The request body must be a JSON object.', 'invalid_request_error', null));
	}
	if (typeof body.model !== 'string' || body.model === '') {
		return sendJson(ctx, 400, errorBody('you must provide a model parameter', 'invalid_request_error', null, 'model'));
	}
	if (!Array.isArray(body.messages) || body.messages.length === 0) {
		return sendJson(ctx, 400, errorBody("Missing required parameter: 'messages'.", 'invalid_request_error',
			'missing_required_parameter', 'messages'));
	}
	const picked = pickStep(body);
	const step = picked.step || {};
	ctx.marker = picked.marker;
	if (ctx.rec) ctx.rec.step = picked.step;
	const answer = () => {
		ctx.timer = null;
		if (ctx.gone) return;
		if (step.hang) return; // never answered; 'close' cleans up when the client leaves
		const status = step.status !== undefined ? Number(step.status) : 200;
		if (status !== 200) {
			const extra = {};
			if (step.retry_after !== undefined) extra['retry-after'] = String(step.retry_after);
			if (step.retry_after_ms !== undefined) extra['retry-after-ms'] = String(step.retry_after_ms);
			if (step.should_retry !== undefined) extra['x-should-retry'] = String(step.should_retry);
			if (step.headers && typeof step.headers === 'object') Object.assign(extra, step.headers);
			return sendJson(ctx, status, stepError(status, step, body.model), extra);
		}
		completion(ctx, body, step);
	};
	const delay = step.delay_ms !== undefined ? Number(step.delay_ms) : opt.delayMs;
	if (delay > 0) ctx.timer = setTimeout(answer, delay);
	else answer();
}

const MODELS = ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'o3-mini'];
function models(ctx, req, id) {
	if (!authorized(req)) return unauthorized(ctx, req);
	const obj = (m) => ({ id: m, object: 'model', created: 1715367049, owned_by: 'system' });
	if (id === undefined) return sendJson(ctx, 200, { object: 'list', data: MODELS.map(obj) });
	if (MODELS.includes(id)) return sendJson(ctx, 200, obj(id));
	sendJson(ctx, 404, errorBody(`The model '${id}' does not exist`, 'invalid_request_error', 'model_not_found', 'model'));
}

function notFound(ctx, req) {
	sendJson(ctx, 404, errorBody(`Invalid URL (${req.method} ${ctx.path})`, 'invalid_request_error', null));
}

function api(ctx, req) {
	const p = ctx.path;
	if (p === '/v1/chat/completions') {
		if (req.method === 'POST') return chatCompletions(ctx, req);
		return sendJson(ctx, 405, errorBody(`Invalid method for URL (${req.method} ${p})`, 'invalid_request_error', null));
	}
	if (p === '/v1/models' && req.method === 'GET') return models(ctx, req);
	if (p.startsWith('/v1/models/') && req.method === 'GET') return models(ctx, req, decodeURIComponent(p.slice(11)));
	notFound(ctx, req);
}

// ---- the server: records, /_fake/* and the body (fake-common.js) ----

const { script } = common.apiFake({
	name: 'openai-fake', opt, now, bodyLimit: BODY_LIMIT, api,
	tooLarge(ctx, res) {
		if (ctx) { ctx.setStatus(413); if (ctx.rec) ctx.rec.body = null; }
		const body = JSON.stringify(errorBody(`Request body too large: the limit is ${BODY_LIMIT} bytes.`,
			'invalid_request_error', 'request_too_large'));
		const h = ctx ? apiHeaders(ctx, 413) : {};
		h['content-type'] = 'application/json';
		h['content-length'] = String(Buffer.byteLength(body));
		res.writeHead(413, h);
		res.end(body);
	},
	badScript: errorBody('body must be {"steps":[{...},...]}', 'invalid_request_error', null),
	notFound: (method, path) => errorBody(`Invalid URL (${method} ${path})`, 'invalid_request_error', null),
});
