// t/fakes/fake-common.js: the plumbing that openai-fake.js, anthropic-fake.js and
// oauth-fake.js share (the command line, the port file, SIGTERM and --parent-pid, and for
// the two model fakes the request records, /_fake/* control endpoints and body reading).
// Each fake keeps its own protocol. Node.js 18+, built-in modules only.
'use strict';

const http = require('http');
const fs = require('fs');

// parseArgs NAME USAGE OPT FLAGS: reads process.argv into OPT. --port and --parent-pid are
// handled here; FLAGS maps every other option to fn({a, next, num, usage}), where next()
// is the option's value, num() that value as a non-negative integer and usage(MSG) exits 2.
// -h/--help prints USAGE; --port-file is required. Returns usage.
function parseArgs(name, usageText, opt, flags) {
	const usage = (msg) => {
		if (msg) process.stderr.write(`${name}: ${msg}\n`);
		process.stderr.write(usageText);
		process.exit(2);
	};
	const argv = process.argv.slice(2);
	let i = 0;
	const next = () => argv[++i];
	const num = (a) => {
		const v = argv[++i];
		if (v === undefined || !/^\d+$/.test(v)) usage(`${a} needs a non-negative integer`);
		return Number(v);
	};
	for (; i < argv.length; i++) {
		const a = argv[i];
		if (a === '--port') opt.port = num(a);
		else if (a === '--parent-pid') opt.parentPid = num(a);
		else if (a === '-h' || a === '--help') usage();
		else if (Object.prototype.hasOwnProperty.call(flags, a)) flags[a]({ a, next, num, usage });
		else usage(`unknown argument: ${a}`);
	}
	if (!opt.portFile) usage('--port-file is required');
	return usage;
}

// replyJson RES STATUS OBJ [HEADERS]: a whole JSON answer.
function replyJson(res, status, obj, headers) {
	const body = JSON.stringify(obj);
	res.writeHead(status, Object.assign({
		'content-type': 'application/json',
		'content-length': String(Buffer.byteLength(body)),
	}, headers || {}));
	res.end(body);
}

// listen SERVER NAME OPT: listens on 127.0.0.1:OPT.port, writes the port to OPT.portFile
// atomically (temp file + rename), exits 0 on SIGTERM or SIGINT, and, with OPT.parentPid,
// when that process is gone (a test script killed outright leaves no fake behind).
function listen(server, name, opt) {
	server.on('error', (err) => {
		process.stderr.write(`${name}: ${err.message}\n`);
		process.exit(1);
	});
	server.listen(opt.port, '127.0.0.1', () => {
		const port = server.address().port;
		const tmp = `${opt.portFile}.tmp.${process.pid}`;
		try {
			fs.writeFileSync(tmp, `${port}\n`);
			fs.renameSync(tmp, opt.portFile);
		} catch (err) {
			process.stderr.write(`${name}: cannot write the port file: ${err.message}\n`);
			try { fs.unlinkSync(tmp); } catch (e) { /* not there */ }
			process.exit(1);
		}
		process.stderr.write(`${name}: listening on 127.0.0.1:${port}\n`);
	});
	const shutdown = () => {
		server.close();
		if (server.closeAllConnections) server.closeAllConnections();
		process.exit(0);
	};
	process.on('SIGTERM', shutdown);
	process.on('SIGINT', shutdown);
	if (opt.parentPid) {
		setInterval(() => {
			try { process.kill(opt.parentPid, 0); } catch (e) { if (e.code === 'ESRCH') shutdown(); }
		}, 500).unref();
	}
}

// apiFake CFG: the server of a model fake (openai-fake.js, anthropic-fake.js), with its
// request records, counters, script queue and /_fake/* endpoints. CFG: name, opt (record,
// maxRecords, port, portFile, parentPid), bodyLimit, now(), api(ctx, req) for every
// request outside /_fake/, initCtx(ctx) (optional, per-protocol ctx fields),
// tooLarge(ctx, res) (writes the 413; ctx is null on a control request),
// badScript (the 400 body of a bad POST /_fake/script) and notFound(method, path) (the
// body of a 404 under /_fake/). Returns {script}: script.shift() takes the next step.
function apiFake(cfg) {
	const { opt, now, bodyLimit } = cfg;
	let records = [];          // request records, oldest first, bounded by opt.maxRecords
	let seq = 0;               // last record's seq
	let total = 0;             // API requests seen (control endpoints not counted)
	let inflight = 0;
	let inflightMax = 0;
	const script = [];         // FIFO of steps from POST /_fake/script

	function addRecord(rec) {
		records.push(rec);
		// Trim in bulk, so that a full buffer does not cost an O(n) shift per request.
		if (records.length > opt.maxRecords + Math.max(16, opt.maxRecords >> 3)) {
			records = records.slice(records.length - opt.maxRecords);
		}
	}

	function currentRecords() {
		return records.length > opt.maxRecords ? records.slice(records.length - opt.maxRecords) : records;
	}

	function control(req, res, path, raw) {
		const reply = (status, obj) => replyJson(res, status, obj);
		switch (`${req.method} ${path}`) {
		case 'GET /_fake/requests': return reply(200, currentRecords());
		case 'DELETE /_fake/requests': records = []; return reply(200, { cleared: true });
		case 'GET /_fake/stats': return reply(200, { requests: total, inflight, inflight_max: inflightMax });
		case 'GET /_fake/script': return reply(200, { steps: script });
		case 'DELETE /_fake/script': script.length = 0; return reply(200, { cleared: true });
		case 'POST /_fake/script': {
			let body;
			try { body = JSON.parse(raw); } catch (e) { body = null; }
			if (!body || !Array.isArray(body.steps) || body.steps.some((s) => !s || typeof s !== 'object' || Array.isArray(s))) {
				return reply(400, cfg.badScript);
			}
			script.push(...body.steps);
			return reply(200, { queued: script.length });
		}
		default:
			return reply(404, cfg.notFound(req.method, path));
		}
	}

	function handle(req, res) {
		const start = now();
		const q = req.url.indexOf('?');
		const path = q < 0 ? req.url : req.url.slice(0, q);
		const isControl = path.startsWith('/_fake/');
		res.on('error', () => {});
		let ctx = null;
		if (!isControl) {
			total++;
			const rec = opt.record ? {
				seq: ++seq, received_at: start, finished_at: null, inflight_at_start: inflight,
				method: req.method, path: req.url, headers: req.headers, body: null, status: null, step: null,
			} : null;
			inflight++;
			if (inflight > inflightMax) inflightMax = inflight;
			ctx = {
				req, res, start, path, rec, raw: '', bodyBytes: 0, gone: false, timer: null, marker: null, cut: false,
				setStatus(s) { if (this.rec) this.rec.status = s; },
			};
			if (cfg.initCtx) cfg.initCtx(ctx);
			if (rec) addRecord(rec);
			res.on('close', () => {
				inflight--;
				ctx.gone = true;
				if (ctx.timer) { clearTimeout(ctx.timer); ctx.timer = null; }
				if (rec) {
					rec.finished_at = now();
					if (!res.writableFinished) rec.aborted = true;
				}
			});
		}

		const declared = Number(req.headers['content-length']);
		const tooLarge = () => {
			cfg.tooLarge(ctx, res);
			req.resume();
		};
		if (declared > bodyLimit) return tooLarge();

		const chunks = [];
		let size = 0;
		let over = false;
		req.on('data', (c) => {
			if (over) return;
			size += c.length;
			if (size > bodyLimit) { over = true; chunks.length = 0; tooLarge(); return; }
			chunks.push(c);
		});
		req.on('error', () => {});
		req.on('end', () => {
			if (over) return;
			const raw = chunks.length === 0 ? '' : (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8');
			if (isControl) return control(req, res, path, raw);
			if (ctx.gone) return;
			ctx.raw = raw;
			ctx.bodyBytes = size;
			if (ctx.rec && raw !== '') {
				try { ctx.rec.body = JSON.parse(raw); } catch (e) { ctx.rec.body = raw; }
			}
			cfg.api(ctx, req);
		});
	}

	const server = http.createServer({ keepAlive: true }, handle);
	server.keepAliveTimeout = 65000;
	server.headersTimeout = 66000;
	server.requestTimeout = 0;
	server.on('clientError', (err, socket) => {
		if (socket.writable && err.code !== 'ECONNRESET') {
			socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
		} else socket.destroy();
	});
	listen(server, cfg.name, opt);
	return { script };
}

module.exports = { parseArgs, replyJson, listen, apiFake };
