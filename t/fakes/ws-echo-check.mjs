// ws-echo-check.mjs: crab's WebSocket layer (core/ws.c) against the ws npm package, the
// client and server most Node programs use. Both roles:
// - the echo server of t/unit/test_ws.c (`test_ws --serve`: GET /ws upgraded by the
//   HTTP server, 64 KiB message limit) driven by a ws client;
// - crab_ws_connect (`test_ws --client URL`) against a ws server that echoes.
//
//   make build/test/t/unit/test_ws && (cd t/fakes && npm ci)
//   node t/fakes/ws-echo-check.mjs [build/test/t/unit/test_ws]
//
// Prints one line per check and exits non-zero if any failed.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import WebSocket, { WebSocketServer } from 'ws';

const bin = process.argv[2] ?? 'build/test/t/unit/test_ws';
let failed = 0;

function report(ok, what, detail) {
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}${ok || detail === undefined ? '' : ` (${detail})`}`);
  if (!ok) failed++;
}

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: timed out`)), ms)),
  ]);
}

// A connected client whose next message or close can be awaited.
async function open(url) {
  const ws = new WebSocket(url);
  const inbox = [];
  let waiter = null;
  ws.on('message', (data, isBinary) => {
    inbox.push({ data, isBinary });
    if (waiter) { waiter(); waiter = null; }
  });
  const closed = new Promise((resolve) => ws.on('close', (code, reason) =>
    resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  await withTimeout(once(ws, 'open'), 5000, 'open');
  return {
    ws,
    closed: () => withTimeout(closed, 8000, 'close'),
    next: async () => {
      if (inbox.length === 0)
        await withTimeout(new Promise((resolve) => { waiter = resolve; }), 5000, 'message');
      return inbox.shift();
    },
  };
}

async function checkServer(port) {
  const url = `ws://127.0.0.1:${port}/ws`;
  let c = await open(url);

  c.ws.send('hello €');
  let m = await c.next();
  report(!m.isBinary && m.data.toString() === 'hello €', 'a text message is echoed as text');

  c.ws.send(Buffer.from([0, 1, 2, 255]));
  m = await c.next();
  report(m.isBinary && Buffer.compare(m.data, Buffer.from([0, 1, 2, 255])) === 0,
    'a binary message is echoed as binary');

  c.ws.send('frag', { fin: false });
  c.ws.send('ment', { fin: true });
  m = await c.next();
  report(m.data.toString() === 'fragment', 'a fragmented message is echoed reassembled');

  const pong = withTimeout(once(c.ws, 'pong'), 5000, 'pong');
  c.ws.ping('are you there');
  const [data] = await pong;
  report(data.toString() === 'are you there', 'a ping is answered with a pong carrying its data');

  const limit = Buffer.alloc(64 << 10, 'x');
  c.ws.send(limit);
  m = await c.next();
  report(m.data.length === limit.length, 'a message of exactly the limit is echoed');

  c.ws.close(1000, 'bye');
  let r = await c.closed();
  report(r.code === 1000, 'the close handshake ends with 1000', r.code);

  c = await open(url);
  c.ws.send(Buffer.alloc((64 << 10) + 1));
  r = await c.closed();
  report(r.code === 1009, 'one byte over the limit is closed with 1009', r.code);

  c = await open(url);
  c.ws.send(Buffer.from([0x63, 0xc0, 0xaf]), { binary: false });
  r = await c.closed();
  report(r.code === 1007, 'text that is not UTF-8 is closed with 1007', r.code);

  c = await open(url);
  c.ws.send('close-me');
  r = await c.closed();
  report(r.code === 4000 && r.reason === 'asked to', 'a close from the server reaches the client',
    `${r.code} ${r.reason}`);

  const refused = new WebSocket(`ws://127.0.0.1:${port}/nope`);
  refused.on('error', () => {});
  const [, res] = await withTimeout(once(refused, 'unexpected-response'), 5000, 'refusal');
  report(res.statusCode === 404, 'a path the handler does not upgrade gets its HTTP answer');
  res.destroy();
}

async function checkClient() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  let auth = null;
  let closeSeen = null;
  wss.on('connection', (ws, req) => {
    auth = req.headers.authorization;
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code, reason) => { closeSeen = { code, reason: reason.toString() }; });
  });
  const child = spawn(bin, ['--client', `ws://127.0.0.1:${wss.address().port}/crab?x=1`],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const [status] = await withTimeout(once(child, 'exit'), 20000, 'crab client');
  await new Promise((resolve) => setTimeout(resolve, 100));
  report(status === 0, 'crab_ws_connect: echoes and a 1000 close against a ws server',
    out.trim().replace(/\n/g, '; '));
  report(auth === 'Bearer from-crab', 'its extra header reached the server', auth);
  report(closeSeen?.code === 1000 && closeSeen?.reason === 'done',
    'the ws server saw its close with 1000 and the reason', JSON.stringify(closeSeen));
  wss.close();
}

const server = spawn(bin, ['--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
try {
  const lines = createInterface({ input: server.stdout });
  const [line] = await withTimeout(once(lines, 'line'), 10000, 'test_ws --serve');
  const port = Number(line.replace(/^port /, ''));
  await checkServer(port);
  await checkClient();
} catch (e) {
  report(false, 'the checks ran to the end', e.message);
} finally {
  server.stdin.end(); // the server stops when its stdin closes
  const [status] = await withTimeout(once(server, 'exit'), 10000, 'server exit').catch(() => [null]);
  report(status === 0, 'the echo server exits cleanly (sanitizers quiet)', status);
}
console.log(failed ? `${failed} failed` : 'all passed');
process.exit(failed ? 1 : 0);
