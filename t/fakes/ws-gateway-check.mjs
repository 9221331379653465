// ws-gateway-check.mjs: a running `crab gateway`'s WebSocket endpoint, GET /v1/ws
// (PROTOCOLS.md §2), driven by the ws npm package (a client nobody here wrote) and, for
// frames no proper client sends, by hand over node's `net` module.
//
//   GW_URL=http://127.0.0.1:PORT TOKEN=crab_... node ws-gateway-check.mjs CHECK
//
// Runs one named check (see CHECKS below) and exits 0 if it holds; otherwise prints what
// differed and exits 1. What each check needs besides GW_URL is read from the
// environment (TOKEN, TOKEN_PRODUCE, TOKEN_SUBSCRIBE, LEASE_ID, CRAB, GW_FP). With an
// https:// GW_URL the client speaks wss:// and, given GW_FP, pins the gateway's key (the
// SHA-256 of its certificate's SubjectPublicKeyInfo, as `crab admin pair.test` prints
// it) instead of trusting any CA. Used by t/t7201-websocket.sh, one test per check.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import WebSocket from 'ws';

const GW_URL = process.env.GW_URL;
if (!GW_URL) {
	console.error('ws-gateway-check: GW_URL must be set');
	process.exit(2);
}
const WS_URL = `${GW_URL.replace(/^http/, 'ws')}/v1/ws`;
const SECURE = GW_URL.startsWith('https:');

class CheckFailed extends Error {}
function check(cond, what, got) {
	if (!cond) throw new CheckFailed(`${what}${got === undefined ? '' : `; got: ${JSON.stringify(got)}`}`);
}
function equal(got, want, what) {
	const g = JSON.stringify(got), w = JSON.stringify(want);
	if (g !== w) throw new CheckFailed(`${what}: got ${g}, want ${w}`);
}
function env(name) {
	const v = process.env[name];
	if (!v) throw new CheckFailed(`${name} must be set for this check`);
	return v;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function withTimeout(promise, ms, what) {
	let t;
	return Promise.race([
		promise,
		new Promise((_, reject) => { t = setTimeout(() => reject(new CheckFailed(`${what}: nothing within ${ms} ms`)), ms); }),
	]).finally(() => clearTimeout(t));
}

// spkiSha256 CERT: the hex SHA-256 of a peer certificate's SubjectPublicKeyInfo.
function spkiSha256(cert) {
	return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

function wsOptions(token, extra = {}) {
	const o = { handshakeTimeout: 5000, ...extra };
	if (token !== null) o.headers = { Authorization: `Bearer ${token}` };
	if (SECURE) o.rejectUnauthorized = false; // pinned by key below, not by a CA
	return o;
}

// A connection that keeps every frame the gateway sends, parsed, in order. take()
// returns the next one; until(pred) returns those up to and including the first that
// matches; quiet(ms) checks that nothing comes for ms.
class Client {
	static async open(token, what = 'the WebSocket') {
		const c = new Client(new WebSocket(WS_URL, wsOptions(token)));
		c.peerFp = null;
		c.ws.on('upgrade', (res) => {
			if (SECURE) c.peerFp = spkiSha256(res.socket.getPeerX509Certificate());
		});
		const failed = new Promise((_, reject) => {
			c.ws.on('unexpected-response', (req, res) =>
				reject(new CheckFailed(`${what}: the upgrade was answered ${res.statusCode}`)));
			c.ws.on('error', (e) => reject(new CheckFailed(`${what}: ${e.message}`)));
		});
		failed.catch(() => {});
		await withTimeout(Promise.race([once(c.ws, 'open'), failed]), 5000, `${what}: open`);
		if (SECURE && process.env.GW_FP)
			equal(c.peerFp, process.env.GW_FP, `${what}: the gateway's key (SPKI SHA-256)`);
		return c;
	}

	constructor(ws) {
		this.ws = ws;
		this.inbox = [];
		this.log = [];
		this.waiter = null;
		this.closeInfo = null;
		ws.on('message', (data, isBinary) => {
			let msg;
			try {
				msg = JSON.parse(data.toString());
			} catch {
				msg = { unparsable: data.toString(), isBinary };
			}
			this.inbox.push(msg);
			this.log.push(msg);
			this.wake();
		});
		ws.on('error', () => {});
		this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
			this.closeInfo = { code, reason: reason.toString() };
			this.wake();
			resolve(this.closeInfo);
		}));
	}

	wake() {
		if (this.waiter) { const w = this.waiter; this.waiter = null; w(); }
	}

	send(obj) {
		this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
	}

	async take(ms = 5000, what = 'a frame') {
		const deadline = Date.now() + ms;
		while (this.inbox.length === 0) {
			if (this.closeInfo)
				throw new CheckFailed(`${what}: the connection closed (${this.closeInfo.code} ${this.closeInfo.reason}) instead; frames: ${this.trace()}`);
			const left = deadline - Date.now();
			if (left <= 0)
				throw new CheckFailed(`${what}: nothing within ${ms} ms; frames so far: ${this.trace()}`);
			await new Promise((resolve) => {
				this.waiter = resolve;
				setTimeout(resolve, left);
			});
		}
		return this.inbox.shift();
	}

	async until(pred, ms = 10000, what = 'a frame') {
		const deadline = Date.now() + ms, got = [];
		for (;;) {
			const m = await this.take(Math.max(1, deadline - Date.now()), what);
			got.push(m);
			if (pred(m)) return got;
		}
	}

	// waitFor PRED: until PRED() holds, checked as each frame arrives; takes nothing.
	async waitFor(pred, ms, what) {
		const deadline = Date.now() + ms;
		while (!pred()) {
			if (this.closeInfo)
				throw new CheckFailed(`${what}: the connection closed (${this.closeInfo.code} ${this.closeInfo.reason}) instead; frames: ${this.trace()}`);
			const left = deadline - Date.now();
			if (left <= 0)
				throw new CheckFailed(`${what}: not within ${ms} ms; frames so far: ${this.trace()}`);
			await new Promise((resolve) => {
				this.waiter = resolve;
				setTimeout(resolve, left);
			});
		}
	}

	async quiet(ms, what) {
		const n = this.log.length;
		await sleep(ms);
		check(this.log.length === n, `${what}: frames came`, this.log.slice(n));
	}

	trace() {
		return JSON.stringify(this.log.slice(-12).map((m) => m.op === 'deliver' ?
			{ op: m.op, delivery_id: m.delivery_id, type: m.event?.type, seq: m.event?.seq } : m));
	}

	async close() {
		if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, 'bye');
		return withTimeout(this.closed, 5000, 'the close handshake');
	}
}

let msgN = 0;
function message(text) {
	msgN++;
	return {
		type: 'channel.message.received', text,
		source: { platform: 'telegram', channel_id: 'ws-check', actor_id: '42', message_id: `${process.pid}-${Date.now()}-${msgN}` },
	};
}

const isDelivery = (m) => m.op === 'deliver' && m.delivery_id !== null;
const isOutbound = (turn) => (m) => isDelivery(m) && m.event.type === 'message.outbound' &&
	(turn === undefined || m.event.turn_id === turn);

// subscribe C [TYPES]: {"op":"subscribe"} answered {"op":"subscribed"} first.
async function subscribe(c, types = null) {
	c.send({ op: 'subscribe', types });
	equal(await c.take(5000, 'the answer to subscribe'), { op: 'subscribed' }, 'the answer to subscribe');
}

// turn C TEXT REF: sends one event and follows it to its message.outbound: the accepted
// answer, the deltas and the deliveries in between. Checks what one turn must show.
async function turn(c, text, ref) {
	c.send({ op: 'event', event: message(text), ref });
	const frames = await c.until((m) => m.op === 'accepted' || m.op === 'error', 10000, `the answer to '${text}'`);
	const acc = frames.at(-1);
	check(acc.op === 'accepted', `'${text}' was not accepted`, acc);
	equal(acc.ref, ref, 'the ref echoed in accepted');
	check(typeof acc.event_id === 'string' && acc.event_id.startsWith('evt_'), 'accepted has an event_id', acc);
	check(typeof acc.session_id === 'string' && acc.session_id.startsWith('ses_'), 'accepted has a session_id', acc);
	equal(acc.duplicate, false, 'accepted.duplicate');
	const done = (m) => isOutbound()(m) && m.event.turn_id === startedFor(c, acc.event_id);
	if (!frames.some(done))
		frames.push(...await c.until(done, 10000, `the message.outbound of '${text}'`));
	const turnId = startedFor(c, acc.event_id);
	check(turnId, `no turn.started for ${acc.event_id}`, c.trace());
	const mine = frames.filter((m) => m.op === 'deliver' && m.event.turn_id === turnId);
	const deltas = mine.filter((m) => m.event.type === 'message.delta');
	const deliveries = mine.filter(isDelivery);
	for (const d of deltas) {
		equal(d.delivery_id, null, 'a message.delta\'s delivery_id');
		equal(d.event.session_id, acc.session_id, 'a message.delta\'s session_id');
		check(typeof d.event.data?.text === 'string', 'a message.delta has data.text', d);
	}
	const streamed = deltas.map((d) => d.event.data.text).join('');
	equal(streamed, `echo: ${text}`, 'the message.delta pieces put together');
	const types = deliveries.map((d) => d.event.type);
	equal(types, ['turn.started', 'turn.completed', 'message.outbound'], 'the turn\'s deliveries, in order');
	const out = deliveries.at(-1);
	equal(out.event.data.text, `echo: ${text}`, 'message.outbound\'s text');
	equal(deliveries[1].event.data.event_id, acc.event_id, 'turn.completed\'s event_id');
	const lastDelta = mine.indexOf(deltas.at(-1)), outAt = mine.indexOf(out);
	check(lastDelta < outAt, 'every message.delta comes before the message.outbound');
	return { acc, frames, deltas, deliveries, turnId };
}

// startedFor C EVENT_ID: the turn id of the turn.started delivery for that event.
function startedFor(c, eventId) {
	const s = c.log.find((m) => isDelivery(m) && m.event.type === 'turn.started' && m.event.data.event_id === eventId);
	return s ? s.event.turn_id : undefined;
}

// checkDeliveries LIST SESSION: delivery ids of the form dlv_..., all different, events
// of SESSION whose seq goes up by one from the first.
function checkDeliveries(list, session) {
	const ids = list.map((d) => d.delivery_id);
	check(ids.every((id) => typeof id === 'string' && id.startsWith('dlv_')), 'delivery ids are dlv_...', ids);
	equal(new Set(ids).size, ids.length, 'distinct delivery ids');
	check(list.every((d) => d.event.session_id === session), 'every delivery is of the session', list.map((d) => d.event.session_id));
	const seqs = list.map((d) => d.event.seq);
	for (let i = 1; i < seqs.length; i++)
		check(seqs[i] === seqs[i - 1] + 1, 'seq goes up by one from delivery to delivery', seqs);
}

// ---- raw frames, over net ----

// rawOpen [TOKEN]: a TCP connection upgraded by hand (the handshake of RFC 6455 §4.1,
// Sec-WebSocket-Accept checked). Returns {sock, buf()} with what came after the 101.
async function rawOpen(token) {
	const u = new URL(GW_URL);
	check(!SECURE, 'raw frames are sent over plain TCP: give an http:// GW_URL');
	const sock = net.connect(Number(u.port), u.hostname);
	sock.on('error', () => {});
	await withTimeout(once(sock, 'connect'), 5000, 'TCP connect');
	const key = randomBytes(16).toString('base64');
	sock.write(`GET /v1/ws HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
		`Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
		`Authorization: Bearer ${token}\r\n\r\n`);
	let data = Buffer.alloc(0), ended = false, waiter = null;
	const wake = () => { if (waiter) { const w = waiter; waiter = null; w(); } };
	sock.on('data', (d) => { data = Buffer.concat([data, d]); wake(); });
	sock.on('end', () => { ended = true; wake(); });
	sock.on('close', () => { ended = true; wake(); });
	const r = {
		sock,
		get data() { return data; },
		set data(v) { data = v; },
		get ended() { return ended; },
		async wait(pred, ms, what) {
			const deadline = Date.now() + ms;
			while (!pred()) {
				const left = deadline - Date.now();
				if (left <= 0) throw new CheckFailed(`${what}: nothing within ${ms} ms (have ${data.length} bytes: ${data.subarray(0, 64).toString('hex')})`);
				await new Promise((resolve) => { waiter = resolve; setTimeout(resolve, left); });
			}
		},
	};
	await r.wait(() => data.indexOf('\r\n\r\n') >= 0 || ended, 5000, 'the handshake\'s answer');
	const end = data.indexOf('\r\n\r\n');
	check(end >= 0, 'the handshake was answered', data.toString());
	const head = data.subarray(0, end).toString();
	r.data = data.subarray(end + 4);
	check(/^HTTP\/1\.1 101 /.test(head), 'the upgrade answered 101', head.split('\r\n')[0]);
	const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
	const got = /\r\nsec-websocket-accept: *([^\r]*)/i.exec(head);
	equal(got && got[1].trim(), accept, 'Sec-WebSocket-Accept');
	return r;
}

// frame OPTS: a client frame. opcode (1 text), payload (Buffer), fin (default 1), rsv
// (the 3 bits), mask (default true), len (the length to announce, default the payload's).
function frame({ opcode = 1, payload = Buffer.alloc(0), fin = 1, rsv = 0, mask = true, len }) {
	const n = len ?? payload.length;
	const head = [(fin << 7) | (rsv << 4) | opcode];
	const m = mask ? 0x80 : 0;
	if (n < 126) head.push(m | n);
	else if (n < 65536) head.push(m | 126, n >> 8, n & 255);
	else {
		head.push(m | 127);
		for (let i = 7; i >= 0; i--) head.push(Math.floor(n / 2 ** (8 * i)) & 255);
	}
	let body = Buffer.from(payload);
	if (mask) {
		const key = randomBytes(4);
		body = Buffer.from(body.map((b, i) => b ^ key[i % 4]));
		return Buffer.concat([Buffer.from(head), key, body]);
	}
	return Buffer.concat([Buffer.from(head), body]);
}

// parseFrames BUF: the server's frames (they must not be masked), and the bytes left.
function parseFrames(buf) {
	const frames = [];
	let at = 0;
	for (;;) {
		if (buf.length - at < 2) break;
		const b0 = buf[at], b1 = buf[at + 1];
		let n = b1 & 127, h = 2;
		if (n === 126) { if (buf.length - at < 4) break; n = buf.readUInt16BE(at + 2); h = 4; }
		else if (n === 127) { if (buf.length - at < 10) break; n = Number(buf.readBigUInt64BE(at + 2)); h = 10; }
		if (buf.length - at < h + n) break;
		frames.push({ fin: b0 >> 7, rsv: (b0 >> 4) & 7, opcode: b0 & 15, masked: b1 >> 7, payload: buf.subarray(at + h, at + h + n) });
		at += h + n;
	}
	return frames;
}

// rawExpectClose R WANT WHAT: the gateway sends a close frame with code WANT (unmasked,
// nothing after it) and ends the TCP connection.
async function rawExpectClose(r, want, what) {
	const closeFrame = () => parseFrames(r.data).find((f) => f.opcode === 8);
	await r.wait(() => closeFrame() || r.ended, 5000, `${what}: the close frame`);
	const f = closeFrame();
	check(f, `${what}: the connection ended without a close frame`, r.data.toString('hex'));
	equal(f.masked, 0, `${what}: the server's close frame is unmasked`);
	check(f.payload.length >= 2, `${what}: the close frame has a code`, f.payload.toString('hex'));
	equal(f.payload.readUInt16BE(0), want, `${what}: the close code`);
	await r.wait(() => r.ended, 5000, `${what}: the gateway ending the TCP connection after its close`);
	r.sock.destroy();
	return { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() };
}

// stillServing WHAT: a new WebSocket subscribes, and GET /v1/health is 200.
async function stillServing(token, what) {
	const c = await Client.open(token, `after ${what}, a new connection`);
	await subscribe(c);
	await c.close();
	const r = await fetch(`${GW_URL}/v1/health`);
	equal(r.status, 200, `after ${what}, GET /v1/health`);
}

// crabAdmin OP ARGS: `crab admin OP ARGS` (CRAB and CRAB_ADMIN_SOCKET from the environment).
function crabAdmin(op, args) {
	const r = spawnSync(env('CRAB'), ['admin', op, JSON.stringify(args)], { encoding: 'utf8' });
	check(r.status === 0, `crab admin ${op} exited ${r.status}: ${r.stderr}`);
	return JSON.parse(r.stdout);
}

// refused TOKEN: the upgrade's HTTP answer (status and JSON body); fails if it opened.
async function refused(token) {
	const ws = new WebSocket(WS_URL, wsOptions(token));
	ws.on('error', () => {});
	const res = await withTimeout(new Promise((resolve, reject) => {
		ws.on('unexpected-response', (req, r) => resolve(r));
		ws.on('open', () => reject(new CheckFailed('the upgrade was accepted')));
	}), 5000, 'the refusal');
	let body = '';
	res.setEncoding('utf8');
	res.on('data', (d) => { body += d; });
	await withTimeout(once(res, 'end'), 5000, 'the refusal\'s body');
	let json = null;
	try { json = JSON.parse(body); } catch { /* checked below */ }
	return { status: res.statusCode, body: json ?? body };
}

const CHECKS = {
	// A produce+subscribe lease for a new session (TOKEN): subscribe, then three events
	// one after the other, each followed to its end: accepted (ref echoed), message.delta
	// pieces making "echo: <text>", then turn.started, turn.completed and message.outbound
	// with delivery ids; all deliveries of the session (session.created first) in seq
	// order with no gap, every one acked. Then three events at once: three accepted,
	// each with its own ref, three replies. A new connection of the same lease, subscribed
	// again, is sent nothing: everything was acknowledged.
	async stream() {
		const token = env('TOKEN');
		const c = await Client.open(token);
		await subscribe(c);
		const texts = ['hello there, this is the first message of three',
			'a second one, with a bit of unicode: ünïcödé ✓ 🦀', 'and the third'];
		const turns = [];
		for (const [i, text] of texts.entries())
			turns.push(await turn(c, text, i === 0 ? { n: 1, nested: ['x'] } : `ref-${i}`));
		const session = turns[0].acc.session_id;
		equal(turns.map((t) => t.acc.session_id), [session, session, session], 'the three events\' sessions');
		check(turns[0].deltas.length >= 2, 'the first reply streamed in more than one piece', turns[0].deltas.length);
		const all = c.log.filter(isDelivery);
		equal(all[0].event.type, 'session.created', 'the first delivery');
		equal(all[0].event.seq, 1, 'the first delivery\'s seq');
		checkDeliveries(all, session);
		equal(all.length, 1 + 3 * 3, 'deliveries: session.created and three per turn');
		for (const d of all) c.send({ op: 'ack', delivery_id: d.delivery_id });

		// Three at once.
		const burst = ['burst one', 'burst two', 'burst three'];
		burst.forEach((text, i) => c.send({ op: 'event', event: message(text), ref: `b${i}` }));
		const from = c.log.length;
		await c.waitFor(() => c.log.filter((m) => m.op === 'accepted' && /^b\d$/.test(m.ref)).length === 3 &&
			c.log.filter((m) => isOutbound()(m) && m.event.data.text.startsWith('echo: burst')).length === 3,
		15000, 'three answers and three replies to the burst');
		const got = c.log.slice(from);
		const accepted = c.log.filter((m) => m.op === 'accepted' && /^b\d$/.test(m.ref));
		equal(accepted.map((a) => a.ref).sort(), ['b0', 'b1', 'b2'], 'the refs of the burst\'s answers');
		check(accepted.every((a) => a.session_id === session), 'the burst went to the same session', accepted);
		equal(c.log.filter((m) => isOutbound()(m) && m.event.data.text.startsWith('echo: burst'))
			.map((m) => m.event.data.text).sort(), burst.map((t) => `echo: ${t}`).sort(), 'the burst\'s replies');
		check(!got.some((m) => m.op === 'error'), 'no error during the burst', got.filter((m) => m.op === 'error'));
		const after = c.log.filter(isDelivery);
		checkDeliveries(after, session);
		for (const d of after.slice(all.length)) c.send({ op: 'ack', delivery_id: d.delivery_id });
		await sleep(200); // the acks are read before the close
		await c.close();

		const again = await Client.open(token, 'the same lease, again');
		await subscribe(again);
		await again.quiet(1000, 'every delivery was acked, yet on subscribing again');
		await again.close();
		console.log(`session ${session}: ${after.length} deliveries, all acked`);
	},

	// Bad frames (TOKEN: produce+subscribe). Over ws: text that is not JSON, JSON that is
	// not an object with an op, a binary frame and an unknown op are each answered
	// {"op":"error"} and the connection serves the next frame; a message of exactly
	// max_body_bytes (MAX) is read, one byte more is closed with 1009. Raw, over net: an
	// unmasked frame and a frame with a reserved bit are closed 1002, a frame announcing
	// more than MAX 1009, text that is not UTF-8 1007; a connection cut in the middle of a
	// frame is forgotten. After each, a new connection still works and /v1/health is 200.
	async badframes() {
		const token = env('TOKEN');
		const max = Number(env('MAX'));
		const c = await Client.open(token);
		const errorOf = async (send, what) => {
			c.send(send);
			const m = await c.take(5000, what);
			check(m.op === 'error' && typeof m.error?.code === 'string' && typeof m.error?.message === 'string',
				`${what}: answered {"op":"error","error":{code,message}}`, m);
			return m.error.code;
		};
		equal(await errorOf('this is not JSON', 'text that is not JSON'), 'invalid_json', 'text that is not JSON: the code');
		await errorOf('[1,2,3]', 'a JSON array');
		await errorOf('{"no_op":true}', 'an object with no op');
		await errorOf('{"op":"event","event":{"type":"channel.message.received"', 'truncated JSON');
		c.ws.send(Buffer.from('{"op":"subscribe"}'), { binary: true });
		const bin = await c.take(5000, 'a binary frame');
		check(bin.op === 'error', 'a binary frame: answered {"op":"error"}', bin);
		await errorOf({ op: 'frobnicate' }, 'an unknown op');
		await errorOf({ op: 'event', event: 'not an object' }, 'an event that is not an object');
		const env1 = await errorOf({ op: 'event', event: { type: 'channel.message.received', text: 'x' } }, 'an envelope without a source');
		check(/invalid_envelope/.test(env1), 'an envelope without a source: invalid_envelope', env1);
		// the connection is still open: a valid frame after them all
		await subscribe(c);
		c.send({ op: 'event', event: message('still here'), ref: 'after-errors' });
		const acc = await c.until((m) => m.op === 'accepted' || m.op === 'error', 5000, 'an event after the bad frames');
		check(acc.at(-1).op === 'accepted' && acc.at(-1).ref === 'after-errors', 'an event after the bad frames is accepted', acc.at(-1));
		await c.until(isOutbound(), 10000, 'its reply');
		// a message of exactly the limit is read (and answered, as an unknown op)
		const pad = JSON.stringify({ op: 'padded', pad: '' });
		c.send(JSON.stringify({ op: 'padded', pad: 'x'.repeat(max - pad.length) }));
		const big = await c.take(5000, `a message of exactly ${max} bytes`);
		check(big.op === 'error' && big.error.code === 'bad_request', `a message of exactly ${max} bytes is read (an unknown op)`, big);
		// one byte more, over ws
		c.send(JSON.stringify({ op: 'padded', pad: 'x'.repeat(max - pad.length + 1) }));
		const cl = await withTimeout(c.closed, 5000, `a message of ${max + 1} bytes`);
		equal(cl.code, 1009, `a message of ${max + 1} bytes (ws client): the close code`);
		await stillServing(token, 'a message over the limit');

		const cases = [
			['an unmasked client frame', frame({ payload: Buffer.from('{"op":"subscribe"}'), mask: false }), 1002],
			['a frame with RSV1 set', frame({ payload: Buffer.from('{"op":"subscribe"}'), rsv: 4 }), 1002],
			['a frame with RSV3 set', frame({ payload: Buffer.from('{"op":"subscribe"}'), rsv: 1 }), 1002],
			['a frame of a reserved opcode (3)', frame({ opcode: 3, payload: Buffer.from('x') }), 1002],
			['a fragmented ping', frame({ opcode: 9, fin: 0, payload: Buffer.from('x') }), 1002],
			['a continuation with nothing to continue', frame({ opcode: 0, payload: Buffer.from('{}') }), 1002],
			[`a frame announcing ${max + 1} bytes (and 100 of them)`, frame({ payload: Buffer.alloc(100, 0x20), len: max + 1 }), 1009],
			['a frame announcing 2^40 bytes', frame({ payload: Buffer.alloc(0), len: 2 ** 40 }), 1009],
			['a text frame that is not UTF-8', frame({ payload: Buffer.from([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x7d]) }), 1007],
			['a text frame cut in the middle of a code point', Buffer.concat([
				frame({ fin: 0, payload: Buffer.from([0x22, 0xe2, 0x82]) }), frame({ opcode: 0, payload: Buffer.from([0x22]) })]), 1007],
		];
		for (const [what, bytes, want] of cases) {
			const r = await rawOpen(token);
			r.sock.write(bytes);
			const got = await rawExpectClose(r, want, what);
			console.log(`${what}: closed ${got.code} ${JSON.stringify(got.reason)}`);
			await stillServing(token, what);
		}

		// cut in the middle of a frame: the header and half the payload, then gone
		for (const [what, cut] of [['in the payload', 12], ['in the header', 1], ['in the mask key', 4]]) {
			const r = await rawOpen(token);
			const f = frame({ payload: Buffer.from(JSON.stringify({ op: 'event', event: message('cut short') })) });
			r.sock.write(f.subarray(0, cut));
			await sleep(100);
			r.sock.destroy();
			await stillServing(token, `a connection cut ${what} of a frame`);
		}
	},

	// Refusals: no Authorization, or a wrong token: HTTP 401 unauthenticated on the
	// upgrade. TOKEN_PRODUCE (produce only) subscribing: error forbidden, the connection
	// staying open; TOKEN_SUBSCRIBE (subscribe only) sending an event: error forbidden.
	// TOKEN with LEASE_ID revoked (crab admin lease.revoke) while connected: closed 1008
	// within 3 s, and a new upgrade with it is 401.
	async refusals() {
		let r = await refused(null);
		equal(r.status, 401, 'no Authorization: the upgrade\'s status');
		equal(r.body?.error?.code, 'unauthenticated', 'no Authorization: the error code');
		r = await refused('crab_NotAToken0123456789abcdefghijklmnopqrstuvwxyz');
		equal(r.status, 401, 'a wrong token: the upgrade\'s status');

		const p = await Client.open(env('TOKEN_PRODUCE'), 'a produce-only lease');
		p.send({ op: 'subscribe', types: null });
		let m = await p.take(5000, 'a produce-only lease subscribing');
		equal(m.op, 'error', 'a produce-only lease subscribing: op');
		equal(m.error?.code, 'forbidden', 'a produce-only lease subscribing: the error code');
		p.send({ op: 'event', event: message('produce only'), ref: 1 });
		m = await p.take(5000, 'a produce-only lease\'s event');
		check(m.op === 'accepted' && m.ref === 1, 'a produce-only lease may still send events', m);
		await p.quiet(500, 'a produce-only lease, not subscribed');
		await p.close();

		const s = await Client.open(env('TOKEN_SUBSCRIBE'), 'a subscribe-only lease');
		s.send({ op: 'event', event: message('subscribe only'), ref: 2 });
		m = await s.take(5000, 'a subscribe-only lease sending an event');
		equal(m.op, 'error', 'a subscribe-only lease sending an event: op');
		equal(m.error?.code, 'forbidden', 'a subscribe-only lease sending an event: the error code');
		check(!('ref' in m) || m.ref === 2, 'the ref, if echoed, is the event\'s', m);
		await subscribe(s);
		await s.close();

		const v = await Client.open(env('TOKEN'), 'the lease to revoke');
		await subscribe(v);
		const t0 = Date.now();
		const rv = crabAdmin('lease.revoke', { lease_id: env('LEASE_ID') });
		equal(rv.revoked, true, 'lease.revoke');
		const cl = await withTimeout(v.closed, Math.max(1, 3000 - (Date.now() - t0)), 'the revoked lease\'s connection closing');
		const took = Date.now() - t0;
		equal(cl.code, 1008, 'the revoked lease\'s connection: the close code');
		check(took <= 3000, 'the revoked lease\'s connection closed within 3 s of lease.revoke', took);
		console.log(`revoked: closed ${cl.code} "${cl.reason}" after ${took} ms`);
		r = await refused(env('TOKEN'));
		equal(r.status, 401, 'the revoked lease: a new upgrade\'s status');
	},

	// TOKEN, a connection-bound lease: subscribes, sends an event, gets its reply, and
	// closes (1000). What happens to the lease is checked by the test script.
	async bound() {
		const c = await Client.open(env('TOKEN'), 'a connection-bound lease');
		await subscribe(c);
		const t = await turn(c, 'bound to this connection', 'bound');
		for (const d of t.deliveries) c.send({ op: 'ack', delivery_id: d.delivery_id });
		const cl = await c.close();
		equal(cl.code, 1000, 'the close handshake\'s code');
		console.log(`session ${t.acc.session_id}`);
	},

	// TOKEN (not connection-bound): subscribes, sends an event, gets its deliveries and
	// acknowledges none, disconnects. Subscribing again on a new connection, it is sent
	// the same deliveries again (ids and events), in order, before anything else; acked
	// then, a third connection gets nothing. A connection that ends without a close
	// handshake (the socket destroyed) keeps the deliveries too.
	async resend() {
		const token = env('TOKEN');
		let c = await Client.open(token, 'the first connection');
		await subscribe(c);
		const t = await turn(c, 'deliver me twice', 'r1');
		const first = c.log.filter(isDelivery);
		checkDeliveries(first, t.acc.session_id);
		check(first.length >= 3, 'the first connection got the turn\'s deliveries', first.length);
		await c.close();

		c = await Client.open(token, 'the second connection');
		await subscribe(c);
		await c.waitFor(() => c.log.length >= 1 + first.length, 5000, 'the deliveries again');
		const second = c.log.slice(1, 1 + first.length);
		equal(second.map((d) => d.op), first.map(() => 'deliver'), 'what comes right after subscribed');
		equal(second.map((d) => d.delivery_id), first.map((d) => d.delivery_id), 'the delivery ids sent again, in order');
		equal(second.map((d) => d.event), first.map((d) => d.event), 'the events sent again');
		await c.quiet(500, 'after the deliveries sent again');
		// without a close handshake: still unacknowledged, still sent again
		c.ws.terminate();
		await withTimeout(c.closed, 5000, 'terminate');

		c = await Client.open(token, 'the third connection');
		await subscribe(c);
		await c.waitFor(() => c.log.length >= 1 + first.length, 5000, 'the deliveries a third time');
		const third = c.log.slice(1, 1 + first.length);
		equal(third.map((d) => d.delivery_id), first.map((d) => d.delivery_id), 'the third time: ids, in order');
		for (const d of third) c.send({ op: 'ack', delivery_id: d.delivery_id });
		await sleep(200);
		await c.close();

		c = await Client.open(token, 'the fourth connection');
		await subscribe(c);
		await c.quiet(1000, 'all acked, yet on subscribing again');
		await c.close();
		console.log(`${first.length} deliveries sent three times: ${first.map((d) => d.delivery_id).join(' ')}`);
	},

	// Held open while the gateway stops (TOKEN): two connections subscribed, one with
	// events still in flight, a third cut without a close handshake; prints "ready" and
	// waits for the gateway's close: 1001 on both.
	async held() {
		const token = env('TOKEN');
		const a = await Client.open(token, 'the first held connection');
		const b = await Client.open(token, 'the second held connection');
		const cut = await Client.open(token, 'the connection cut');
		for (const c of [a, b, cut]) await subscribe(c);
		for (let i = 0; i < 5; i++) {
			b.send({ op: 'event', event: message(`in flight ${i}`), ref: i });
			cut.send({ op: 'event', event: message(`cut short ${i}`), ref: i });
		}
		cut.ws.terminate();
		console.log('ready');
		for (const [c, what] of [[a, 'the first'], [b, 'the second']]) {
			const cl = await withTimeout(c.closed, 20000, `${what} held connection's close`);
			equal(cl.code, 1001, `${what} held connection: the close code at the gateway's stop`);
		}
		console.log(`closed 1001 "${a.closeInfo.reason}"`);
	},

	// Over wss:// (GW_URL https://, GW_FP the gateway's key): the gateway's key is the
	// one the admin socket names, and a turn streams as over ws://.
	async tls() {
		check(SECURE, 'the tls check wants an https:// GW_URL');
		env('GW_FP');
		const c = await Client.open(env('TOKEN'), 'wss');
		await subscribe(c);
		const t = await turn(c, 'over TLS', 'tls');
		for (const d of t.deliveries) c.send({ op: 'ack', delivery_id: d.delivery_id });
		await c.close();
		console.log(`wss: key ${c.peerFp}, session ${t.acc.session_id}`);
	},
};

const name = process.argv[2];
if (!CHECKS[name]) {
	console.error(`ws-gateway-check: unknown check '${name}'; one of: ${Object.keys(CHECKS).join(', ')}`);
	process.exit(2);
}
try {
	await withTimeout(CHECKS[name](), 45000, `the check ${name}`);
	process.exit(0);
} catch (e) {
	console.log(`not ok: ${name}: ${e instanceof CheckFailed ? e.message : e.stack}`);
	process.exit(1);
}
