// t/fakes/check-anthropic-client.mjs: the official `@anthropic-ai/sdk` npm client against
// t/fakes/anthropic-fake.js, so that the fake is checked by what the real client accepts.
//
//   FAKE_URL=http://127.0.0.1:PORT FAKE_KEY=sk-ant-... FAKE_BEARER=... \
//       node check-anthropic-client.mjs CHECK
//
// Runs one named check (see CHECKS below) and exits 0 if it holds, printing "ok: ...";
// otherwise prints what differed and exits 1. Used by t/t5101-anthropic-fake.sh, one test
// per check. The fake runs with --api-key FAKE_KEY --bearer FAKE_BEARER.
import Anthropic from '@anthropic-ai/sdk';
import { CheckFailed, check, controller, equal, expectError as expectSdkError, runCheck } from './check-lib.mjs';

const FAKE_URL = process.env.FAKE_URL;
const FAKE_KEY = process.env.FAKE_KEY;
const FAKE_BEARER = process.env.FAKE_BEARER;
if (!FAKE_URL || !FAKE_KEY || !FAKE_BEARER) {
	console.error('check-anthropic-client: FAKE_URL, FAKE_KEY and FAKE_BEARER must be set');
	process.exit(2);
}
const MODEL = 'claude-haiku-4-5'; // not one the SDK warns is deprecated

// No ANTHROPIC_* variable of the environment may change what is checked.
for (const v of ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'ANTHROPIC_BASE_URL', 'ANTHROPIC_CUSTOM_HEADERS']) delete process.env[v];

function client(opts = {}) {
	const o = { baseURL: FAKE_URL, maxRetries: 0, timeout: 10000, ...opts };
	if (!('apiKey' in o) && !('authToken' in o)) o.apiKey = FAKE_KEY;
	return new Anthropic(o);
}

const control = controller(FAKE_URL);
const messageRecords = async () =>
	(await control('GET', '/_fake/requests')).filter((r) => r.path.startsWith('/v1/messages'));

const expectError = (fn, cls, what) => expectSdkError(fn, cls, what, Anthropic.APIError);

const WEATHER = {
	name: 'get_weather', description: 'Current weather',
	input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

const CHECKS = {
	// A plain message: the echo text, end_turn, usage, the Message shape.
	async message() {
		const m = await client().messages.create({
			model: MODEL, max_tokens: 100, system: 'You are terse.',
			messages: [
				{ role: 'user', content: 'an earlier question' },
				{ role: 'assistant', content: 'an earlier answer' },
				{ role: 'user', content: 'hello there' },
			],
		});
		equal(m.type, 'message', 'type');
		check(/^msg_./.test(m.id), 'id is msg_...', m.id);
		equal(m.role, 'assistant', 'role');
		equal(m.model, MODEL, 'model echoed');
		equal(m.content, [{ type: 'text', text: 'echo: hello there' }], 'content');
		equal(m.stop_reason, 'end_turn', 'stop_reason');
		equal(m.stop_sequence, null, 'stop_sequence');
		check(m.usage && m.usage.input_tokens > 0 && m.usage.output_tokens > 0, 'usage counts', m.usage);
		// text blocks are read as well as strings; a system as blocks too
		const p = await client().messages.create({
			model: MODEL, max_tokens: 10, system: [{ type: 'text', text: 'sys' }],
			messages: [{ role: 'user', content: [{ type: 'text', text: 'from blocks' }] }],
		});
		equal(p.content[0].text, 'echo: from blocks', 'content from text blocks');
		// the response headers, through the raw response
		const { response } = await client().messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'headers' }],
		}).withResponse();
		check(/^req_/.test(response.headers.get('request-id')), 'request-id header', response.headers.get('request-id'));
		check(response.headers.get('anthropic-ratelimit-requests-limit') === '1000', 'rate-limit headers');
		console.log(`ok: ${m.content[0].text}, usage ${JSON.stringify(m.usage)}`);
	},

	// A streamed message through the SDK's stream helper (text events, finalMessage), and
	// the raw events in order: message_start first, ping, deltas, message_stop last.
	async stream() {
		const text = 'the quick brown fox jumps';
		const pieces = [];
		const s = client().messages.stream({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: text }] });
		s.on('text', (delta) => pieces.push(delta));
		const final = await s.finalMessage();
		equal(pieces.join(''), `echo: ${text}`, 'the text events add up');
		check(pieces.length >= 3, 'the text came in several deltas', pieces);
		equal(final.content, [{ type: 'text', text: `echo: ${text}` }], 'finalMessage content');
		equal(final.stop_reason, 'end_turn', 'finalMessage stop_reason');
		check(final.usage.input_tokens > 0 && final.usage.output_tokens > 1, 'finalMessage usage (from message_delta)', final.usage);

		const raw = await client().messages.create({ model: MODEL, max_tokens: 100, stream: true,
			messages: [{ role: 'user', content: 'raw events' }] });
		const types = [];
		for await (const ev of raw) types.push(ev.type);
		equal(types[0], 'message_start', 'the first event');
		equal(types[types.length - 1], 'message_stop', 'the last event');
		equal(types[types.length - 2], 'message_delta', 'message_delta before message_stop');
		check(!types.includes('ping'), 'the SDK skips ping (the fake sends one: see t5101 curl)', types);
		check(types.filter((t) => t === 'content_block_delta').length >= 2, 'content_block_delta events', types);
		equal(types.filter((t) => t === 'content_block_start').length, 1, 'one block');
		console.log(`ok: "${pieces.join('')}" in ${pieces.length} deltas; events ${types.join(',')}`);
	},

	// A tool_use answer, streamed as input_json_delta pieces and put together by the stream
	// helper; then the tool_result sent back in the next request, and that request's answer.
	async tool_use() {
		const step = { text: 'Let me check.', tool_use: [
			{ name: 'get_weather', input: { city: 'Paris', days: [1, 2], nested: { b: '}' } } },
			{ name: 'get_time', input: {} },
		] };
		const params = {
			model: MODEL, max_tokens: 200, tools: [WEATHER, { name: 'get_time', input_schema: { type: 'object', properties: {} } }],
			messages: [{ role: 'user', content: `weather in Paris? [fake:${JSON.stringify(step)}]` }],
		};
		const s = client().messages.stream(params);
		let jsonPieces = 0;
		s.on('inputJson', () => { jsonPieces++; });
		const final = await s.finalMessage();
		equal(final.stop_reason, 'tool_use', 'stop_reason');
		equal(final.content.length, 3, 'blocks');
		equal(final.content[0], { type: 'text', text: 'Let me check.' }, 'the text block');
		const [a, b] = [final.content[1], final.content[2]];
		equal([a.type, a.name, a.input], ['tool_use', 'get_weather', step.tool_use[0].input], 'the first tool_use, input assembled');
		equal([b.type, b.name, b.input], ['tool_use', 'get_time', {}], 'the second tool_use, empty input');
		check(/^toolu_./.test(a.id) && a.id !== b.id, 'tool_use ids', [a.id, b.id]);
		check(jsonPieces >= 3, 'the input came in pieces', jsonPieces);

		// Not streamed: the same blocks.
		const m = await client().messages.create(params);
		equal(m.content.map((c) => c.type), ['text', 'tool_use', 'tool_use'], 'non-streamed blocks');
		equal(m.content[1].input, step.tool_use[0].input, 'non-streamed input');

		// The results go back as one user turn of tool_result blocks.
		const next = await client().messages.create({
			...params,
			messages: [
				params.messages[0],
				{ role: 'assistant', content: final.content },
				{ role: 'user', content: [
					{ type: 'tool_result', tool_use_id: a.id, content: '18C, sunny' },
					{ type: 'tool_result', tool_use_id: b.id, content: '{"error":{"code":"boom"}}', is_error: true },
				] },
			],
		});
		equal(next.stop_reason, 'end_turn', 'after the results');
		equal(next.content, [{ type: 'text', text: 'echo: 18C, sunny\n{"error":{"code":"boom"}}' }],
			'the default answer to a turn of tool results echoes them (and no marker replays)');
		// A result missing: the API's 400.
		const err = await expectError(() => client().messages.create({
			...params,
			messages: [params.messages[0], { role: 'assistant', content: final.content },
				{ role: 'user', content: [{ type: 'tool_result', tool_use_id: a.id, content: 'x' }] }],
		}), Anthropic.BadRequestError, 'a tool_use without its tool_result');
		check(/without `tool_result` blocks/.test(err.message), 'the 400 names the rule', err.message);
		console.log(`ok: ${JSON.stringify(final.content.slice(1))}`);
	},

	// A 429 with maxRetries 0: RateLimitError, rate_limit_error, retry-after, request-id; one
	// request. With maxRetries 1 the client waits retry-after and succeeds.
	async error_429() {
		await control('DELETE', '/_fake/requests');
		const err = await expectError(() => client().messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'slow [fake:{"status":429}]' }],
		}), Anthropic.RateLimitError, '429');
		equal(err.status, 429, 'status');
		equal(err.type, 'rate_limit_error', 'error type');
		equal(err.error.type, 'error', 'body type');
		check(/rate limit/.test(err.message), 'error message', err.message);
		check(/^req_/.test(err.requestID), 'requestID', err.requestID);
		equal(err.headers.get('retry-after'), '1', 'retry-after');
		equal((await messageRecords()).length, 1, 'requests with maxRetries 0');

		await control('POST', '/_fake/script', { steps: [{ status: 429 }] });
		const t0 = Date.now();
		const m = await client({ maxRetries: 1 }).messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'retry me' }],
		});
		const ms = Date.now() - t0;
		equal(m.content[0].text, 'echo: retry me', 'after the retry');
		check(ms >= 900 && ms < 5000, 'the retry waited the retry-after second', ms);
		const recs = await messageRecords();
		equal(recs.slice(-2).map((r) => r.status), [429, 200], 'the fake saw 429 then 200');
		equal(recs[recs.length - 1].headers['x-stainless-retry-count'], '1', 'x-stainless-retry-count');
		console.log(`ok: ${err.constructor.name}: ${err.message}; retried after ${ms} ms`);
	},

	// 529 and 500: InternalServerError with overloaded_error and api_error.
	async error_5xx() {
		const e529 = await expectError(() => client().messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'busy [fake:{"status":529}]' }],
		}), Anthropic.InternalServerError, '529');
		equal([e529.status, e529.type, e529.error.error.message], [529, 'overloaded_error', 'Overloaded'], '529 error');
		const e500 = await expectError(() => client().messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'broken [fake:{"status":500}]' }],
		}), Anthropic.InternalServerError, '500');
		equal([e500.status, e500.type], [500, 'api_error'], '500 error');
		console.log(`ok: ${e529.message}; ${e500.message}`);
	},

	// A wrong key: AuthenticationError; the right bearer token passes, a wrong one does not.
	async auth() {
		const err = await expectError(() => client({ apiKey: 'sk-ant-wrong-000' }).messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }],
		}), Anthropic.AuthenticationError, '401');
		equal([err.status, err.type], [401, 'authentication_error'], '401 error');
		const m = await client({ authToken: FAKE_BEARER, apiKey: null }).messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'with a token' }],
		});
		equal(m.content[0].text, 'echo: with a token', 'answered with the bearer token');
		await expectError(() => client({ authToken: 'sk-ant-oat01-wrong', apiKey: null }).messages.create({
			model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }],
		}), Anthropic.AuthenticationError, 'a wrong token');
		const recs = await messageRecords();
		const last = recs[recs.length - 2];
		equal(last.headers.authorization, `Bearer ${FAKE_BEARER}`, 'the token went as a Bearer');
		check(last.headers['x-api-key'] === undefined, 'and no x-api-key with it', last.headers['x-api-key']);
		const models = await client().models.list();
		check(models.data.length > 0 && models.data.every((x) => x.type === 'model'), 'models.list', models.data);
		console.log(`ok: ${err.message}`);
	},

	// An error event in the middle of a stream: the helper raises APIError after the text
	// that came before it.
	async mid_stream_error() {
		const s = client().messages.stream({ model: MODEL, max_tokens: 50,
			messages: [{ role: 'user', content: 'partial answer here [fake:{"mid_stream_error":true}]' }] });
		let got = '';
		s.on('text', (d) => { got += d; });
		let err = null;
		try { await s.finalMessage(); } catch (e) { err = e; }
		check(err !== null, 'the stream raised no error');
		check(err instanceof Anthropic.APIError, `raised ${err.constructor.name}, want APIError: ${err.message}`);
		check(/Overloaded/.test(err.message), 'the error carries the API message', err.message);
		equal(err.error && err.error.error && err.error.error.type, 'overloaded_error', 'the error type');
		check(got.length > 0 && 'echo: partial answer here'.startsWith(got), 'text before the error', got);
		console.log(`ok: "${got}" then ${err.constructor.name}: ${err.message}`);
	},

	// The fake refuses what the API refuses: no max_tokens, a system role, no version.
	async invalid() {
		const e1 = await expectError(() => client().messages.create({
			model: MODEL, messages: [{ role: 'user', content: 'hi' }],
		}), Anthropic.BadRequestError, 'no max_tokens');
		check(/max_tokens: Field required/.test(e1.message), 'the message names max_tokens', e1.message);
		const e2 = await expectError(() => client().messages.create({
			model: MODEL, max_tokens: 5, messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'hi' }],
		}), Anthropic.BadRequestError, 'a system role');
		check(/messages\.0\.role/.test(e2.message), 'the message names the role', e2.message);
		const e3 = await expectError(() => client({ defaultHeaders: { 'anthropic-version': '2099-01-01' } }).messages.create({
			model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }],
		}), Anthropic.BadRequestError, 'an unknown anthropic-version');
		check(/anthropic-version/.test(e3.message), 'the message names the header', e3.message);
		console.log(`ok: ${e1.message}; ${e2.message}; ${e3.message}`);
	},

	// The fake records what the client sent: the body and the headers, the key included.
	async records() {
		await control('DELETE', '/_fake/requests');
		const marker = `record-me-${process.pid}-${Date.now()}`;
		await client().messages.create({ model: 'claude-haiku-4-5', max_tokens: 7, temperature: 0.5,
			system: 'sys', messages: [{ role: 'user', content: marker }] });
		const recs = await messageRecords();
		equal(recs.length, 1, 'records');
		const r = recs[0];
		equal([r.method, r.path, r.status, r.step], ['POST', '/v1/messages', 200, null], 'method, path, status, step');
		equal(r.body, { model: 'claude-haiku-4-5', max_tokens: 7, temperature: 0.5, system: 'sys',
			messages: [{ role: 'user', content: marker }] }, 'recorded body');
		equal(r.headers['x-api-key'], FAKE_KEY, 'recorded x-api-key');
		equal(r.headers['anthropic-version'], '2023-06-01', 'recorded anthropic-version');
		check(r.seq > 0 && r.finished_at >= r.received_at, 'seq and times', r);
		console.log(`ok: ${JSON.stringify({ seq: r.seq, version: r.headers['anthropic-version'] })}`);
	},
};

await runCheck('check-anthropic-client.mjs', CHECKS);
