#!/usr/bin/env node
// t/fakes/anthropic-fake.js: a fake Anthropic Messages API server for the tests. Node.js
// 18+, built-in modules only. The wire format follows shared/protocols/anthropic-messages.md;
// t/fakes/README.md describes the behaviour steps and the /_fake/* control endpoints, the
// same as openai-fake.js has.
//
//   node t/fakes/anthropic-fake.js --port-file FILE [--port N] [--api-key KEY]
//        [--bearer TOKEN] [--delay-ms N] [--no-record] [--max-records N] [--parent-pid PID]
'use strict';

const { performance } = require('perf_hooks');
const common = require('./fake-common');

// ---- command line ----

const opt = {
	portFile: null, port: 0, apiKey: null, bearer: null, delayMs: 0, record: true,
	maxRecords: 100000, parentPid: 0,
};
common.parseArgs('anthropic-fake', 'usage: anthropic-fake.js --port-file FILE [--port N] [--api-key KEY] ' +
	'[--bearer TOKEN] [--delay-ms N] [--no-record] [--max-records N] [--parent-pid PID]\n', opt, {
	'--port-file': ({ next, usage }) => { opt.portFile = next(); if (!opt.portFile) usage('--port-file needs a file'); },
	'--api-key': ({ next, usage }) => { opt.apiKey = next(); if (opt.apiKey === undefined) usage('--api-key needs a key'); },
	'--bearer': ({ next, usage }) => { opt.bearer = next(); if (opt.bearer === undefined) usage('--bearer needs a token'); },
	'--delay-ms': ({ a, num }) => { opt.delayMs = num(a); },
	'--no-record': () => { opt.record = false; },
	'--max-records': ({ a, num }) => { opt.maxRecords = num(a); },
});

const BODY_LIMIT = 32 * 1024 * 1024; // the API's, answered 413 request_too_large
const VERSION = '2023-06-01';
const now = () => performance.timeOrigin + performance.now();

// ---- state ----

const idPrefix = Math.random().toString(36).slice(2, 10);
let idCounter = 0;
const nextId = () => `${idPrefix}${(++idCounter).toString(36)}`;

// ---- responses ----

// Headers every API answer carries (anthropic-messages.md §2): request-id, the
// organization and the rate-limit family (resets as RFC 3339).
function apiHeaders(ctx, status, extra) {
	const reset = new Date(Date.now() + 60000).toISOString().replace(/\.\d+Z$/, 'Z');
	const limited = status === 429;
	const h = {
		'request-id': ctx.requestId,
		'anthropic-organization-id': 'org-fake-0000',
		'anthropic-ratelimit-requests-limit': '1000',
		'anthropic-ratelimit-requests-remaining': limited ? '0' : '999',
		'anthropic-ratelimit-requests-reset': reset,
		'anthropic-ratelimit-tokens-limit': '480000',
		'anthropic-ratelimit-tokens-remaining': limited ? '0' : '479000',
		'anthropic-ratelimit-tokens-reset': reset,
		'anthropic-ratelimit-input-tokens-limit': '400000',
		'anthropic-ratelimit-input-tokens-remaining': limited ? '0' : '399000',
		'anthropic-ratelimit-input-tokens-reset': reset,
		'anthropic-ratelimit-output-tokens-limit': '80000',
		'anthropic-ratelimit-output-tokens-remaining': limited ? '0' : '79000',
		'anthropic-ratelimit-output-tokens-reset': reset,
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

function errorBody(ctx, type, message) {
	return { type: 'error', error: { type, message }, request_id: ctx.requestId };
}

function sendError(ctx, status, type, message, extra) {
	sendJson(ctx, status, errorBody(ctx, type, message), extra);
}

// The documented error type and message for STATUS (§4); a step's type/message override.
const ERRORS = {
	400: ['invalid_request_error', 'Invalid request (fake).'],
	401: ['authentication_error', 'invalid x-api-key'],
	402: ['billing_error', 'Your credit balance is too low to access the Anthropic API.'],
	403: ['permission_error', 'Your API key does not have permission to use the specified resource.'],
	404: ['not_found_error', 'The requested resource could not be found.'],
	413: ['request_too_large', 'Request exceeds the maximum allowed number of bytes.'],
	429: ['rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit (fake).'],
	500: ['api_error', 'Internal server error (fake).'],
	504: ['timeout_error', 'Request timed out (fake).'],
	529: ['overloaded_error', 'Overloaded'],
};
function stepError(status, step) {
	const [t, m] = ERRORS[status] || [status >= 500 ? 'api_error' : 'invalid_request_error', `Fake error ${status}.`];
	return [typeof step.type === 'string' ? step.type : t, typeof step.message === 'string' ? step.message : m];
}

// ---- request validation (§1), as the API answers it: 400 invalid_request_error ----

class Invalid extends Error {}
const bad = (msg) => { throw new Invalid(msg); };
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,128}$/;

function checkBlock(b, where, role) {
	if (!isObj(b) || typeof b.type !== 'string') bad(`${where}.type: Field required`);
	switch (b.type) {
	case 'text':
		if (typeof b.text !== 'string') bad(`${where}.text: Field required`);
		if (b.text === '') bad('messages: text content blocks must be non-empty');
		return;
	case 'image': {
		const s = b.source;
		if (!isObj(s) || !['base64', 'url'].includes(s.type)) bad(`${where}.source: Input tag does not match any of the expected tags: 'base64', 'url'`);
		return;
	}
	case 'tool_use':
		if (role !== 'assistant') bad(`${where}: tool_use blocks can only be in assistant messages`);
		if (typeof b.id !== 'string' || b.id === '') bad(`${where}.id: Field required`);
		if (typeof b.name !== 'string' || !TOOL_NAME.test(b.name)) bad(`${where}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
		if (!isObj(b.input)) bad(`${where}.input: Input should be a valid dictionary`);
		return;
	case 'tool_result':
		if (role !== 'user') bad(`${where}: tool_result blocks can only be in user messages`);
		if (typeof b.tool_use_id !== 'string' || b.tool_use_id === '') bad(`${where}.tool_use_id: Field required`);
		if (b.content !== undefined && typeof b.content !== 'string' && !Array.isArray(b.content)) {
			bad(`${where}.content: Input should be a valid string or list`);
		}
		if (Array.isArray(b.content)) b.content.forEach((c, i) => checkBlock(c, `${where}.content.${i}`, 'user'));
		if (b.is_error !== undefined && typeof b.is_error !== 'boolean') bad(`${where}.is_error: Input should be a valid boolean`);
		return;
	case 'thinking': case 'redacted_thinking':
		if (role !== 'assistant') bad(`${where}: thinking blocks can only be in assistant messages`);
		return;
	default:
		bad(`${where}: Input tag '${b.type}' found using 'type' does not match any of the expected tags`);
	}
}

// The messages as the API sees them: consecutive same-role turns combined, every content
// an array of blocks. Throws Invalid.
function checkMessages(messages) {
	if (!Array.isArray(messages)) bad('messages: Field required');
	if (messages.length === 0) bad('messages: at least one message is required');
	const turns = [];
	messages.forEach((m, i) => {
		if (!isObj(m)) bad(`messages.${i}: Input should be a valid dictionary`);
		if (m.role !== 'user' && m.role !== 'assistant') bad(`messages.${i}.role: Input should be 'user' or 'assistant'`);
		let blocks;
		if (typeof m.content === 'string') blocks = m.content === '' ? [] : [{ type: 'text', text: m.content }];
		else if (Array.isArray(m.content)) {
			m.content.forEach((b, k) => checkBlock(b, `messages.${i}.content.${k}`, m.role));
			blocks = m.content;
		} else bad(`messages.${i}.content: Field required`);
		if (blocks.length === 0 && i !== messages.length - 1) {
			bad(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
		}
		if (blocks.length === 0 && m.role === 'user') {
			bad(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
		}
		const last = turns[turns.length - 1];
		if (last && last.role === m.role) last.blocks.push(...blocks);
		else turns.push({ role: m.role, blocks: [...blocks], at: i });
	});
	// every tool_use answered by a tool_result in the very next turn, and only those
	turns.forEach((t, i) => {
		const uses = t.role === 'assistant' ? t.blocks.filter((b) => b.type === 'tool_use').map((b) => b.id) : [];
		const next = turns[i + 1];
		if (uses.length && next) {
			const got = new Set(next.blocks.filter((b) => b.type === 'tool_result').map((b) => b.tool_use_id));
			const missing = uses.filter((id) => !got.has(id));
			if (missing.length) {
				bad(`messages.${next.at}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
			}
		}
		if (t.role === 'user') {
			const prev = turns[i - 1];
			const known = new Set(prev ? prev.blocks.filter((b) => b.type === 'tool_use').map((b) => b.id) : []);
			const stray = t.blocks.filter((b) => b.type === 'tool_result' && !known.has(b.tool_use_id)).map((b) => b.tool_use_id);
			if (stray.length) {
				bad(`messages.${t.at}.content.0: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${stray.join(', ')}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
			}
		}
	});
	return turns;
}

function checkBody(body) {
	if (!isObj(body)) bad('The request body must be a JSON object.');
	if (typeof body.model !== 'string' || body.model === '') bad('model: Field required');
	if (body.max_tokens === undefined) bad('max_tokens: Field required');
	if (!Number.isInteger(body.max_tokens)) bad('max_tokens: Input should be a valid integer');
	if (body.max_tokens < 1) bad('max_tokens: Input should be greater than or equal to 1');
	const turns = checkMessages(body.messages);
	if (body.system !== undefined) {
		if (Array.isArray(body.system)) body.system.forEach((b, i) => {
			if (!isObj(b) || b.type !== 'text' || typeof b.text !== 'string') bad(`system.${i}: Input should be a text block`);
		});
		else if (typeof body.system !== 'string') bad('system: Input should be a valid string or list');
	}
	if (body.tools !== undefined) {
		if (!Array.isArray(body.tools)) bad('tools: Input should be a valid list');
		const names = new Set();
		body.tools.forEach((t, i) => {
			if (!isObj(t) || typeof t.name !== 'string' || !TOOL_NAME.test(t.name)) bad(`tools.${i}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
			if (names.has(t.name)) bad('tools: Tool names must be unique.');
			names.add(t.name);
			if (!isObj(t.input_schema)) bad(`tools.${i}.custom.input_schema: Field required`);
			if (t.input_schema.type !== 'object') bad(`tools.${i}.custom.input_schema.type: Input should be 'object'`);
			if (t.parameters !== undefined) bad(`tools.${i}.custom.parameters: Extra inputs are not permitted`);
		});
	}
	if (body.stream !== undefined && typeof body.stream !== 'boolean') bad('stream: Input should be a valid boolean');
	for (const k of Object.keys(body)) {
		if (!['model', 'max_tokens', 'messages', 'system', 'tools', 'tool_choice', 'stream', 'temperature',
			'top_p', 'top_k', 'stop_sequences', 'metadata', 'thinking', 'service_tier'].includes(k)) {
			bad(`${k}: Extra inputs are not permitted`);
		}
	}
	return turns;
}

// ---- request content ----

function blocksText(blocks) {
	return blocks.filter((b) => b && b.type === 'text' && typeof b.text === 'string').map((b) => b.text).join('\n');
}

// The last user turn: its text blocks joined, or when it has none (a turn of tool results)
// the results' text, so that an echo shows what a tool returned. null without a user turn.
function lastUserTurn(turns) {
	const t = turns[turns.length - 1 - (turns[turns.length - 1].role === 'user' ? 0 : 1)];
	if (!t || t.role !== 'user') return null;
	if (t.blocks.some((b) => b.type === 'text')) return { text: blocksText(t.blocks), results: false };
	const results = t.blocks.filter((b) => b.type === 'tool_result')
		.map((b) => (typeof b.content === 'string' ? b.content : blocksText(b.content || [])));
	return { text: results.join('\n'), results: true };
}

// findMarker TEXT: the first "[fake:{...}]" in TEXT as {step, start, end}, or null (the
// same rules as openai-fake.js).
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
			if (!isObj(step)) continue;
			const end = text[close + 1] === ']' ? close + 2 : close + 1;
			return { step, start: at, end };
		}
	}
}

const tokens = (bytes) => Math.max(1, Math.ceil(bytes / 4));

function textPieces(text) {
	if (text === '') return [];
	const p = text.match(/\s*\S+\s*/g);
	return p && p.join('') === text ? p : [text];
}

// 2 or 3 pieces of a JSON text (fewer only if it is that short).
function jsonPieces(s) {
	const cps = Array.from(s);
	if (cps.length < 2) return cps.length ? [s] : [];
	const n = cps.length >= 3 ? 3 : 2;
	const size = Math.ceil(cps.length / n);
	const out = [];
	for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
	return out;
}

function toolUsesOf(step) {
	const list = Array.isArray(step.tool_use) ? step.tool_use : null;
	if (!list) return null;
	return list.map((t) => ({
		type: 'tool_use',
		id: typeof t.id === 'string' ? t.id : `toolu_${nextId()}`,
		name: String(t.name !== undefined ? t.name : 'tool'),
		input: t.input !== undefined ? t.input : {},
	}));
}

// ---- the message ----

function sse(name, obj) {
	return `event: ${name}\ndata: ${JSON.stringify({ type: name, ...obj })}\n\n`;
}

function message(ctx, body, turns, step) {
	const model = body.model;
	const stream = body.stream === true;
	const uses = toolUsesOf(step);
	let text;
	if (typeof step.text === 'string') text = step.text;
	else if (uses) text = null;
	else {
		const last = lastUserTurn(turns);
		let t = last ? last.text : '';
		const mk = ctx.marker;
		if (mk) t = (t.slice(0, mk.start) + t.slice(mk.end)).replace(/\s+/g, ' ').trim();
		text = `echo: ${t}`;
	}
	const content = [];
	if (text !== null && text !== '') content.push({ type: 'text', text });
	if (uses) content.push(...uses);
	const stopReason = typeof step.stop_reason === 'string' ? step.stop_reason : (uses ? 'tool_use' : 'end_turn');
	const stopSequence = typeof step.stop_sequence === 'string' ? step.stop_sequence : null;
	let outBytes = text ? Buffer.byteLength(text) : 0;
	if (uses) for (const u of uses) outBytes += Buffer.byteLength(JSON.stringify(u.input)) + u.name.length;
	const usage = {
		input_tokens: tokens(ctx.bodyBytes), output_tokens: tokens(outBytes),
		cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
	};
	const id = `msg_${nextId()}`;
	const extra = isObj(step.headers) ? { ...step.headers } : null;

	if (!stream) {
		if (step.garbage) return sendRaw(ctx, 200, 'application/json', '{"id": not json', extra);
		const obj = {
			id, type: 'message', role: 'assistant', model, content,
			stop_reason: stopReason, stop_sequence: stopSequence, usage,
		};
		if (step.truncate_after_events !== undefined) {
			const s = JSON.stringify(obj);
			return sendCut(ctx, 'application/json', Buffer.byteLength(s), [s.slice(0, s.length >> 1)], extra);
		}
		return sendJson(ctx, 200, obj, extra);
	}

	const events = [];
	events.push(sse('message_start', { message: {
		id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
		usage: { input_tokens: usage.input_tokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
	} }));
	let pinged = false;
	const ping = () => { if (!pinged) { pinged = true; events.push(sse('ping', {})); } };
	for (let index = 0; index < content.length && !ctx.midError; index++) {
		const b = content[index];
		if (b.type === 'text') {
			events.push(sse('content_block_start', { index, content_block: { type: 'text', text: '' } }));
			ping();
			for (const p of textPieces(b.text)) {
				events.push(sse('content_block_delta', { index, delta: { type: 'text_delta', text: p } }));
			}
		} else {
			events.push(sse('content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }));
			ping();
			events.push(sse('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } }));
			for (const p of jsonPieces(JSON.stringify(b.input))) {
				events.push(sse('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: p } }));
			}
		}
		if (step.mid_stream_error && index === 0) {
			// one block begun, then the API's in-stream error, and the end
			events.length = Math.min(events.length, 4);
			const type = typeof step.type === 'string' ? step.type : 'overloaded_error';
			const msg = typeof step.message === 'string' ? step.message : (type === 'overloaded_error' ? 'Overloaded' : 'Internal server error (fake, mid-stream).');
			events.push(`event: error\ndata: ${JSON.stringify({ type: 'error', error: { type, message: msg } })}\n\n`);
			ctx.midError = true;
			break;
		}
		events.push(sse('content_block_stop', { index }));
	}
	if (ctx.midError) return streamOut(ctx, events, step, extra);
	if (step.mid_stream_error) { // no block at all: the error right after message_start
		const type = typeof step.type === 'string' ? step.type : 'overloaded_error';
		events.push(`event: error\ndata: ${JSON.stringify({ type: 'error', error: { type, message: typeof step.message === 'string' ? step.message : 'Overloaded' } })}\n\n`);
		return streamOut(ctx, events, step, extra);
	}
	ping();
	events.push(sse('message_delta', { delta: { stop_reason: stopReason, stop_sequence: stopSequence },
		usage: { output_tokens: usage.output_tokens } }));
	events.push(sse('message_stop', {}));
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

// sendCut: a 200 that sends PARTS (LEN bytes promised when not null), then the socket is cut.
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
			'event: message_start\ndata: {not json\n\nevent: ping\ndata: still {{ not json\n\n', extra);
	}
	const sseHeaders = { 'cache-control': 'no-cache', ...(extra || {}) };
	let cutAtEnd = false;
	if (step.truncate_after_events !== undefined) {
		const n = Math.max(0, Number(step.truncate_after_events) | 0);
		events = events.slice(0, n);
		cutAtEnd = true;
		if (!step.event_delay_ms) return sendCut(ctx, 'text/event-stream', null, events.length ? [events.join('')] : [], sseHeaders);
	}
	const delay = Number(step.event_delay_ms) || 0;
	const h = apiHeaders(ctx, 200, sseHeaders);
	h['content-type'] = 'text/event-stream; charset=utf-8';
	ctx.setStatus(200);
	ctx.res.writeHead(200, h);
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

function pickStep(turns) {
	const last = lastUserTurn(turns);
	if (last && !last.results && last.text.includes(MARK)) {
		const mk = findMarker(last.text);
		if (mk) return { step: mk.step, marker: mk };
	}
	if (script.length) return { step: script.shift(), marker: null };
	return { step: null, marker: null };
}

function mask(s) {
	return s.length <= 8 ? `${s.slice(0, 2)}***` : `${s.slice(0, 6)}***${s.slice(-4)}`;
}

// The credential (§1): x-api-key, or Authorization: Bearer. null when it is good, else
// the 401 message.
function refused(req) {
	const key = req.headers['x-api-key'];
	const auth = req.headers.authorization;
	if (key === undefined && auth === undefined) return 'x-api-key header is required';
	if (key !== undefined) {
		if (opt.apiKey !== null && key !== opt.apiKey) return 'invalid x-api-key';
		if (opt.apiKey === null && opt.bearer !== null) return 'invalid x-api-key';
		return null;
	}
	const m = /^Bearer\s+(.+)$/i.exec(auth);
	if (!m) return 'invalid authorization header';
	if (opt.bearer !== null && m[1] === opt.bearer) return null;
	if (opt.bearer === null && opt.apiKey === null) return null;
	return `Invalid bearer token (${mask(m[1])})`;
}

function headersBad(req) {
	const v = req.headers['anthropic-version'];
	if (v === undefined) return 'anthropic-version: header is required';
	if (v !== VERSION) return `anthropic-version: '${v}' is not a valid version`;
	return null;
}

function parseBody(ctx) {
	let body;
	try { body = JSON.parse(ctx.raw); } catch (e) {
		sendError(ctx, 400, 'invalid_request_error', 'There was an error parsing the body of your request as JSON.');
		return null;
	}
	return body;
}

function messages(ctx, req) {
	const who = refused(req);
	if (who) return sendError(ctx, 401, 'authentication_error', who);
	const hv = headersBad(req);
	if (hv) return sendError(ctx, 400, 'invalid_request_error', hv);
	const body = parseBody(ctx);
	if (body === null) return;
	let turns;
	try { turns = checkBody(body); } catch (e) {
		if (e instanceof Invalid) return sendError(ctx, 400, 'invalid_request_error', e.message);
		throw e;
	}
	const picked = pickStep(turns);
	const step = picked.step || {};
	ctx.marker = picked.marker;
	if (ctx.rec) ctx.rec.step = picked.step;
	const answer = () => {
		ctx.timer = null;
		if (ctx.gone) return;
		if (step.hang) return;
		const status = step.status !== undefined ? Number(step.status) : 200;
		if (status !== 200) {
			const extra = {};
			if (step.retry_after !== undefined) extra['retry-after'] = String(step.retry_after);
			else if (status === 429) extra['retry-after'] = '1';
			if (step.retry_after_ms !== undefined) extra['retry-after-ms'] = String(step.retry_after_ms);
			if (step.should_retry !== undefined) extra['x-should-retry'] = String(step.should_retry);
			if (isObj(step.headers)) Object.assign(extra, step.headers);
			const [type, msg] = stepError(status, step);
			return sendError(ctx, status, type, msg, extra);
		}
		message(ctx, body, turns, step);
	};
	const delay = step.delay_ms !== undefined ? Number(step.delay_ms) : opt.delayMs;
	if (delay > 0) ctx.timer = setTimeout(answer, delay);
	else answer();
}

function countTokens(ctx, req) {
	const who = refused(req);
	if (who) return sendError(ctx, 401, 'authentication_error', who);
	const body = parseBody(ctx);
	if (body === null) return;
	try {
		if (!isObj(body) || typeof body.model !== 'string') bad('model: Field required');
		checkMessages(body.messages);
	} catch (e) {
		if (e instanceof Invalid) return sendError(ctx, 400, 'invalid_request_error', e.message);
		throw e;
	}
	sendJson(ctx, 200, { input_tokens: tokens(ctx.bodyBytes) });
}

const MODELS = [['claude-sonnet-4-5-20250929', 'Claude Sonnet 4.5'], ['claude-haiku-4-5-20251001', 'Claude Haiku 4.5'],
	['claude-opus-4-1-20250805', 'Claude Opus 4.1']];
function models(ctx, req) {
	const who = refused(req);
	if (who) return sendError(ctx, 401, 'authentication_error', who);
	const data = MODELS.map(([id, name]) => ({ type: 'model', id, display_name: name, created_at: '2025-09-29T00:00:00Z' }));
	sendJson(ctx, 200, { data, has_more: false, first_id: data[0].id, last_id: data[data.length - 1].id });
}

function api(ctx, req) {
	const p = ctx.path;
	if (p === '/v1/messages') {
		if (req.method === 'POST') return messages(ctx, req);
		return sendError(ctx, 405, 'invalid_request_error', `Method ${req.method} not allowed for ${p}`);
	}
	if (p === '/v1/messages/count_tokens' && req.method === 'POST') return countTokens(ctx, req);
	if (p === '/v1/models' && req.method === 'GET') return models(ctx, req);
	sendError(ctx, 404, 'not_found_error', `Not found: ${req.method} ${p}`);
}

// ---- the server: records, /_fake/* and the body (fake-common.js) ----

const { script } = common.apiFake({
	name: 'anthropic-fake', opt, now, bodyLimit: BODY_LIMIT, api,
	initCtx(ctx) { ctx.requestId = `req_011${nextId()}`; ctx.midError = false; },
	tooLarge(ctx, res) {
		const body = JSON.stringify({ type: 'error', error: { type: 'request_too_large',
			message: 'Request exceeds the maximum allowed number of bytes.' }, request_id: ctx ? ctx.requestId : null });
		const h = ctx ? apiHeaders(ctx, 413) : {};
		if (ctx) ctx.setStatus(413);
		h['content-type'] = 'application/json';
		h['content-length'] = String(Buffer.byteLength(body));
		h.connection = 'close';
		res.writeHead(413, h);
		res.end(body);
	},
	badScript: { type: 'error', error: { type: 'invalid_request_error', message: 'body must be {"steps":[{...},...]}' } },
	notFound: (method, path) => ({ type: 'error', error: { type: 'not_found_error', message: `Not found: ${method} ${path}` } }),
});
