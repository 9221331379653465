// ws-subscriber.mjs: a paired subscriber on its own WebSocket, with the real `ws` client
// (t/t7103-subscriber-ws.sh). Connects to URL with the component's certificate and key,
// subscribes, prints every {"op":"deliver"} frame as one JSON line, acknowledges it
// unless --no-ack, and exits 0 once it has COUNT of them (or 1 after 20 s).
//   node ws-subscriber.mjs URL CERT KEY COUNT [--no-ack]
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const [url, cert, key, count, flag] = process.argv.slice(2);
const ack = flag !== '--no-ack';
let got = 0;
const ws = new WebSocket(url, {
  cert: readFileSync(cert), key: readFileSync(key),
  rejectUnauthorized: false, // the gateway is pinned by the test, not by a CA
});
ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', types: null })));
ws.on('message', (data) => {
  const m = JSON.parse(String(data));
  if (m.op === 'error') { console.error(JSON.stringify(m)); process.exit(1); }
  if (m.op !== 'deliver') return;
  console.log(JSON.stringify(m));
  if (ack) ws.send(JSON.stringify({ op: 'ack', delivery_id: m.delivery_id }));
  if (++got >= Number(count)) { ws.close(1000); }
});
ws.on('close', () => process.exit(got >= Number(count) ? 0 : 1));
ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
setTimeout(() => { console.error(`timed out with ${got}`); process.exit(1); }, 20000);
