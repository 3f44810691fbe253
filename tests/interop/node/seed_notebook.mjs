// Loads an .ipynb into a y-websocket room the way JupyterLab opens a file: a stock YNotebook
// filled with `setSource()` and synced by y-websocket's WebsocketProvider.
//
// Usage:
//   node seed_notebook.mjs <ws_url> <room> <file.ipynb>
//
// The interop test uses it to give the Node reference server (which has no REST API to
// create notebooks) the same starting document that Tandem gets from `POST /api/notebooks`.
// Exits once everything it wrote has left the socket and the connection closed cleanly.

import { readFileSync } from 'node:fs';
import { WebsocketProvider } from 'y-websocket';
import { YNotebook } from '@jupyter/ydoc';
import WebSocket from 'ws';

const [wsUrl, room, file] = process.argv.slice(2);
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

const nb = new YNotebook();
const provider = new WebsocketProvider(wsUrl, room, nb.ydoc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true
});

const deadline = Date.now() + 30_000;
while (!provider.synced) {
  if (Date.now() > deadline) {
    console.error('seed: timed out waiting for the initial sync');
    process.exit(1);
  }
  await sleep(20);
}
if (nb.cells.length > 0) {
  console.error(`seed: room ${room} is not empty (${nb.cells.length} cells)`);
  process.exit(1);
}
nb.setSource(JSON.parse(readFileSync(file, 'utf8')));
console.error(`seed: loaded ${nb.cells.length} cells from ${file}`);

const ws = provider.ws;
while (ws && ws.bufferedAmount > 0 && Date.now() < deadline) {
  await sleep(10);
}
const closed = ws ? new Promise(resolve => ws.once('close', resolve)) : Promise.resolve();
provider.destroy();
await Promise.race([closed, sleep(2_000)]);
process.exit(0);
