// t/fakes/check-openai-client.mjs: the official `openai` npm client against
// t/fakes/openai-fake.js, so that the fake is checked by what real clients accept.
//
//   FAKE_URL=http://127.0.0.1:PORT/v1 FAKE_KEY=sk-... node check-openai-client.mjs CHECK
//
// Runs one named check (see CHECKS below) and exits 0 if it holds; otherwise prints what
// differed and exits 1. Used by t/t5001-openai-fake.sh, one test per check.
import OpenAI from 'openai';
import { CheckFailed, check, controller, equal, expectError as expectSdkError, runCheck } from './check-lib.mjs';

const FAKE_URL = process.env.FAKE_URL;
const FAKE_KEY = process.env.FAKE_KEY;
if (!FAKE_URL || !FAKE_KEY) {
	console.error('check-openai-client: FAKE_URL and FAKE_KEY must be set');
	process.exit(2);
}
const CONTROL = FAKE_URL.replace(/\/v1\/?$/, '');
const MODEL = 'gpt-4o-mini';

function client(opts = {}) {
	return new OpenAI({ baseURL: FAKE_URL, apiKey: FAKE_KEY, maxRetries: 0, timeout: 10000, ...opts });
}

const control = controller(CONTROL);
const chatRecords = async () =>
	(await control('GET', '/_fake/requests')).filter((r) => r.path === '/v1/chat/completions');

// expectError FN CLASS: FN rejects with an instance of CLASS (and of APIError); the error.
const expectError = (fn, cls, what) => expectSdkError(fn, cls, what, OpenAI.APIError);

const CHECKS = {
	// A plain completion: the echo text, the finish reason and plausible usage.
	async completion() {
		const c = await client().chat.completions.create({
			model: MODEL,
			messages: [
				{ role: 'system', content: 'You are terse.' },
				{ role: 'user', content: 'an earlier question' },
				{ role: 'assistant', content: 'an earlier answer' },
				{ role: 'user', content: 'hello there' },
			],
		});
		equal(c.object, 'chat.completion', 'object');
		check(/^chatcmpl-./.test(c.id), 'id is chatcmpl-...', c.id);
		equal(c.model, MODEL, 'model echoed');
		check(Number.isInteger(c.created) && Math.abs(c.created - Date.now() / 1000) < 60, 'created is now', c.created);
		equal(c.choices.length, 1, 'one choice');
		equal(c.choices[0].message.role, 'assistant', 'role');
		equal(c.choices[0].message.content, 'echo: hello there', 'content');
		equal(c.choices[0].message.refusal, null, 'refusal');
		equal(c.choices[0].finish_reason, 'stop', 'finish_reason');
		const u = c.usage;
		check(u && u.prompt_tokens > 0 && u.completion_tokens > 0, 'usage counts', u);
		equal(u.total_tokens, u.prompt_tokens + u.completion_tokens, 'total_tokens');
		// Text parts are read as well as plain strings.
		const p = await client().chat.completions.create({
			model: MODEL,
			messages: [{ role: 'user', content: [{ type: 'text', text: 'from parts' }] }],
		});
		equal(p.choices[0].message.content, 'echo: from parts', 'content from text parts');
		console.log(`ok: ${c.choices[0].message.content}, usage ${JSON.stringify(u)}`);
	},

	// A text stream: the pieces add up to the text, and include_usage gives a last chunk
	// with no choices and the usage (null on the others).
	async stream() {
		const text = 'the quick brown fox jumps';
		const s = await client().chat.completions.create({
			model: MODEL, stream: true, stream_options: { include_usage: true },
			messages: [{ role: 'user', content: text }],
		});
		let got = '', pieces = 0, role = null, finish = null, usage = null, after = 0;
		const ids = new Set();
		for await (const ch of s) {
			equal(ch.object, 'chat.completion.chunk', 'chunk object');
			ids.add(ch.id);
			if (usage) after++;
			if (ch.choices.length === 0) {
				check(ch.usage, 'a chunk without choices carries the usage', ch);
				usage = ch.usage;
				continue;
			}
			equal(ch.usage, null, 'usage on a chunk with choices');
			const d = ch.choices[0].delta;
			if (d.role) role = d.role;
			if (d.content) { got += d.content; pieces++; }
			if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
		}
		equal(got, `echo: ${text}`, 'text assembled from the chunks');
		check(pieces >= 2, 'the text came in several chunks', pieces);
		equal(role, 'assistant', 'role');
		equal(finish, 'stop', 'finish_reason');
		equal(ids.size, 1, 'one id across the chunks');
		check(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0 &&
			usage.total_tokens === usage.prompt_tokens + usage.completion_tokens, 'usage chunk', usage);
		equal(after, 0, 'chunks after the usage chunk');
		// Without include_usage there is no usage chunk.
		const s2 = await client().chat.completions.create({
			model: MODEL, stream: true, messages: [{ role: 'user', content: 'no usage' }],
		});
		let n = 0;
		for await (const ch of s2) {
			check(ch.choices.length === 1, 'every chunk has a choice without include_usage', ch);
			check(ch.usage === undefined || ch.usage === null, 'no usage without include_usage', ch.usage);
			n++;
		}
		check(n >= 3, 'chunks without include_usage', n);
		console.log(`ok: "${got}" in ${pieces} pieces, usage ${JSON.stringify(usage)}`);
	},

	// Two parallel tool calls in a stream, put together by the client's stream helper, and
	// by hand from the deltas (the arguments must come in fragments).
	async tool_calls() {
		const step = { tool_calls: [
			{ name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' },
			{ name: 'get_time', arguments: '{"tz":"Europe/Paris","nested":{"a":[1,2,{"b":"}"}]}}' },
		] };
		const want = [
			['get_weather', { city: 'Paris', unit: 'celsius' }],
			['get_time', { tz: 'Europe/Paris', nested: { a: [1, 2, { b: '}' }] } }],
		];
		const params = {
			model: MODEL,
			messages: [{ role: 'user', content: `weather and time in Paris [fake:${JSON.stringify(step)}]` }],
			tools: [
				{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
				{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
			],
		};
		const verify = (calls, how) => {
			equal(calls.length, 2, `${how}: number of tool calls`);
			calls.forEach((c, i) => {
				check(/^call_./.test(c.id), `${how}: call ${i} id is call_...`, c.id);
				equal(c.type, 'function', `${how}: call ${i} type`);
				equal(c.function.name, want[i][0], `${how}: call ${i} name`);
				let args;
				try { args = JSON.parse(c.function.arguments); } catch (e) {
					throw new CheckFailed(`${how}: call ${i} arguments are not JSON: ${c.function.arguments}`);
				}
				equal(args, want[i][1], `${how}: call ${i} arguments`);
			});
			check(calls[0].id !== calls[1].id, `${how}: distinct call ids`);
		};

		// The client's helper.
		const runner = client().beta.chat.completions.stream(params);
		const final = await runner.finalChatCompletion();
		equal(final.choices[0].finish_reason, 'tool_calls', 'helper: finish_reason');
		verify(final.choices[0].message.tool_calls, 'stream helper');

		// By hand, counting the fragments.
		const s = await client().chat.completions.create({ ...params, stream: true });
		const acc = [], frags = [0, 0];
		let finish = null;
		for await (const ch of s) {
			const c = ch.choices[0];
			if (!c) continue;
			if (c.finish_reason) finish = c.finish_reason;
			for (const tc of c.delta.tool_calls || []) {
				if (!acc[tc.index]) {
					check(tc.id && tc.type === 'function' && tc.function && tc.function.name,
						'the first fragment of a call has id, type and name', tc);
					acc[tc.index] = { id: tc.id, type: tc.type, function: { name: tc.function.name, arguments: '' } };
				} else {
					check(tc.id === undefined && (!tc.function || tc.function.name === undefined),
						'later fragments carry only the index and arguments', tc);
				}
				if (tc.function && tc.function.arguments) {
					acc[tc.index].function.arguments += tc.function.arguments;
					frags[tc.index]++;
				}
			}
		}
		equal(finish, 'tool_calls', 'by hand: finish_reason');
		verify(acc, 'by hand');
		check(frags[0] >= 2 && frags[1] >= 2, 'arguments came in 2+ fragments per call', frags);

		// Not streamed: message.tool_calls, content null.
		const c = await client().chat.completions.create(params);
		equal(c.choices[0].finish_reason, 'tool_calls', 'non-streaming: finish_reason');
		equal(c.choices[0].message.content, null, 'non-streaming: content');
		verify(c.choices[0].message.tool_calls, 'non-streaming');
		console.log(`ok: ${JSON.stringify(final.choices[0].message.tool_calls)}`);
	},

	// A 429 with Retry-After: 1 is retried by the client itself, after about a second.
	async retry_429() {
		await control('DELETE', '/_fake/requests');
		await control('DELETE', '/_fake/script');
		await control('POST', '/_fake/script', { steps: [{ status: 429, retry_after: '1' }] });
		const t0 = Date.now();
		const c = await client({ maxRetries: 2 }).chat.completions.create({
			model: MODEL, messages: [{ role: 'user', content: 'retry me' }],
		});
		const ms = Date.now() - t0;
		equal(c.choices[0].message.content, 'echo: retry me', 'content after the retry');
		// The client's own backoff for a first retry is at most 500 ms: a wait of a second
		// means it read Retry-After.
		check(ms >= 900 && ms < 5000, 'the retry waited about the Retry-After second', ms);
		const recs = await chatRecords();
		equal(recs.map((r) => r.status), [429, 200], 'statuses the fake recorded');
		equal(recs[0].step, { status: 429, retry_after: '1' }, 'the step of the first request');
		equal(recs[1].step, null, 'the step of the second request');
		equal(recs[1].headers['x-stainless-retry-count'], '1', 'x-stainless-retry-count of the retry');
		check(recs[0].headers['x-stainless-retry-count'] !== '1', 'the first request is no retry', recs[0].headers['x-stainless-retry-count']);
		check(recs[1].received_at - recs[0].finished_at >= 900, 'gap between the two requests (ms)', recs[1].received_at - recs[0].finished_at);
		console.log(`ok: retried once after ${ms} ms`);
	},

	// A 500 with retries off: InternalServerError with the fake's error body, one request.
	async error_500() {
		await control('DELETE', '/_fake/requests');
		const err = await expectError(() => client({ maxRetries: 0 }).chat.completions.create({
			model: MODEL, messages: [{ role: 'user', content: 'fail [fake:{"status":500}]' }],
		}), OpenAI.InternalServerError, '500');
		equal(err.status, 500, 'status');
		equal(err.type, 'server_error', 'error type');
		check(/server had an error/.test(err.message), 'error message', err.message);
		check(/^req_/.test(err.request_id || err.headers['x-request-id']), 'x-request-id on the error', err.headers);
		equal((await chatRecords()).length, 1, 'requests with maxRetries 0');
		console.log(`ok: ${err.constructor.name}: ${err.message}`);
	},

	// A wrong key: AuthenticationError, code invalid_api_key; the right key passes.
	async auth_401() {
		const err = await expectError(() => client({ apiKey: 'sk-wrong-key-0000' }).chat.completions.create({
			model: MODEL, messages: [{ role: 'user', content: 'hi' }],
		}), OpenAI.AuthenticationError, '401');
		equal(err.status, 401, 'status');
		equal(err.code, 'invalid_api_key', 'error code');
		equal(err.type, 'invalid_request_error', 'error type');
		const models = await client().models.list();
		check(models.data.length > 0 && models.data.every((m) => m.object === 'model'), 'models.list with the right key', models.data);
		await expectError(() => client({ apiKey: 'sk-wrong' }).models.list(), OpenAI.AuthenticationError, 'models with a wrong key');
		console.log(`ok: ${err.constructor.name}: ${err.message}`);
	},

	// An error object in the middle of a stream raises APIError from the iteration, after
	// the text that came before it.
	async mid_stream_error() {
		const s = await client().chat.completions.create({
			model: MODEL, stream: true,
			messages: [{ role: 'user', content: 'partial answer [fake:{"mid_stream_error":true}]' }],
		});
		let got = '', err = null;
		try {
			for await (const ch of s) got += (ch.choices[0] && ch.choices[0].delta.content) || '';
		} catch (e) { err = e; }
		check(err !== null, 'the stream raised no error');
		check(err instanceof OpenAI.APIError, `raised ${err.constructor.name}, want APIError: ${err.message}`);
		check(/mid-stream/.test(err.message), 'the error carries the fake message', err.message);
		check(got.length > 0 && 'echo: partial answer'.startsWith(got), 'text before the error', got);
		console.log(`ok: "${got}" then ${err.constructor.name}: ${err.message}`);
	},

	// The fake records what the client sent: body and headers, Authorization included.
	async records() {
		await control('DELETE', '/_fake/requests');
		const marker = `record-me-${process.pid}-${Date.now()}`;
		await client().chat.completions.create({
			model: 'gpt-4.1', temperature: 0.5,
			messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: marker }],
		});
		const recs = await chatRecords();
		equal(recs.length, 1, 'records');
		const r = recs[0];
		equal(r.method, 'POST', 'method');
		equal(r.body.model, 'gpt-4.1', 'recorded model');
		equal(r.body.temperature, 0.5, 'recorded temperature');
		equal(r.body.messages, [{ role: 'system', content: 'sys' }, { role: 'user', content: marker }], 'recorded messages');
		equal(r.headers.authorization, `Bearer ${FAKE_KEY}`, 'recorded Authorization header');
		equal(r.headers['content-type'], 'application/json', 'recorded Content-Type');
		equal(r.status, 200, 'recorded status');
		equal(r.step, null, 'recorded step');
		check(r.seq > 0 && r.finished_at >= r.received_at && r.received_at > Date.now() - 60000, 'seq and times', r);
		console.log(`ok: ${JSON.stringify({ seq: r.seq, model: r.body.model, auth: r.headers.authorization })}`);
	},
};

await runCheck('check-openai-client.mjs', CHECKS);
