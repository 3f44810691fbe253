// A stock Yjs client for Tandem's interop test: yjs + y-websocket's WebsocketProvider +
// @jupyter/ydoc's YNotebook, exactly as JupyterLab wires them, with no Tandem code.
//
// Usage:
//   node edit_notebook.mjs <plan.json>
//
// The plan (written by tests/tests/interop.rs) says where to connect and what to edit:
//   { "ws_url", "notebook_id", "token", "name", "peer", "seed",
//     "shared_cell", "delete_cells": [ids], "typed": "text typed char by char" }
//
// The client runs the same script as its Python twin (tests/interop/python/edit_notebook.py):
//   1. connect and wait for the initial sync;
//   2. announce itself in notebook metadata (`interop_<name>`) and wait until the peer has
//      too, so the edits below really overlap in time;
//   3. insert a markdown cell `<name>-md` before the shared cell and a code cell
//      `<name>-code` at the end;
//   4. type `typed` one character per transaction at the end of the shared cell's source and
//      into its own code cell, with small seeded pauses;
//   5. delete `delete_cells`, set cell and notebook metadata (one key both clients write);
//   6. mark itself done, wait until the peer is done, and print the notebook it sees as one
//      JSON line on stdout (YNotebook.toJSON()).
// Progress goes to stderr so stdout carries only the result.

import { readFileSync } from 'node:fs';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { YNotebook } from '@jupyter/ydoc';
import WebSocket from 'ws';

const TIMEOUT_MS = 60_000;

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const log = (...args) => console.error(`[${plan.name}]`, ...args);

// A small seeded PRNG (mulberry32) so a failing run can be replayed with the same pauses.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(plan.seed);
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function waitFor(what, predicate) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; notebook: ${summary()}`);
    }
    await sleep(20);
  }
}

// The notebook's shape, not its content: enough to see what arrived, short enough to log.
function summary() {
  const content = nb.toJSON();
  const cells = content.cells.map(cell => `${cell.id}(${[...cell.source].length})`);
  const interop = Object.fromEntries(
    Object.entries(content.metadata).filter(([key]) => key.startsWith('interop_'))
  );
  return `cells ${JSON.stringify(cells)}; interop metadata ${JSON.stringify(interop).slice(0, 500)}`;
}

const cellIndex = id => nb.cells.findIndex(cell => cell.id === id);
const peerState = () => (nb.getMetadata(`interop_${plan.peer}`) ?? {}).state;

// YNotebook always creates its own Y.Doc (its constructor takes no doc), so the provider
// is bound to `nb.ydoc`; YNotebook observes the cells array and picks up remote cells.
const nb = new YNotebook();
const provider = new WebsocketProvider(plan.ws_url, plan.notebook_id, nb.ydoc, {
  params: { token: plan.token },
  WebSocketPolyfill: WebSocket,
  // Nothing in this test needs cross-tab sync; it would only add noise.
  disableBc: true
});
provider.on('connection-error', event => log('connection error', event?.message ?? event));
provider.on('connection-close', event => log('connection closed', event?.code, event?.reason));

// Lets what this client sent leave the socket and closes with a handshake: exiting with
// unread input makes the kernel send RST, which can drop our own last frames.
async function closeGracefully() {
  const ws = provider.ws;
  const deadline = Date.now() + 2_000;
  while (ws && ws.bufferedAmount > 0 && Date.now() < deadline) {
    await sleep(10);
  }
  const closed = ws ? new Promise(resolve => ws.once('close', resolve)) : Promise.resolve();
  provider.destroy();
  await Promise.race([closed, sleep(2_000)]);
}

try {
  log('connecting to', plan.ws_url, plan.notebook_id);
  await waitFor('initial sync', () => provider.synced);
  log(`synced: ${nb.cells.length} cells`);
  if (cellIndex(plan.shared_cell) < 0) {
    throw new Error(`shared cell ${plan.shared_cell} is not in the synced notebook`);
  }

  nb.setMetadata(`interop_${plan.name}`, { state: 'ready' });
  await waitFor('peer ready', () => peerState() !== undefined);
  log('peer is here; editing');

  nb.insertCell(cellIndex(plan.shared_cell), {
    id: `${plan.name}-md`,
    cell_type: 'markdown',
    source: `# Written by ${plan.name}\n`,
    metadata: {}
  });
  nb.insertCell(nb.cells.length, {
    id: `${plan.name}-code`,
    cell_type: 'code',
    source: '',
    metadata: {},
    outputs: [],
    execution_count: null
  });

  // Iterate code points, not UTF-16 units: a typist never types half a surrogate pair.
  for (const ch of plan.typed) {
    for (const id of [plan.shared_cell, `${plan.name}-code`]) {
      const cell = nb.getCell(cellIndex(id));
      const end = cell.ysource.length;
      cell.updateSource(end, end, ch);
    }
    if (random() < 0.5) {
      await sleep(Math.floor(random() * 6));
    }
  }

  for (const id of plan.delete_cells) {
    const index = cellIndex(id);
    if (index >= 0) {
      nb.deleteCell(index);
    }
  }

  const shared = nb.getCell(cellIndex(plan.shared_cell));
  shared.setMetadata(`interop_${plan.name}`, { typed_chars: [...plan.typed].length });
  shared.setMetadata('interop_last_writer', plan.name);
  nb.setMetadata('interop_last_writer', plan.name);

  nb.setMetadata(`interop_${plan.name}`, { state: 'done', typed: plan.typed });
  await waitFor('peer done', () => peerState() === 'done');
  log('peer is done');

  process.stdout.write(JSON.stringify(nb.toJSON()) + '\n');
  await closeGracefully();
  process.exit(0);
} catch (error) {
  log('failed:', error?.stack ?? error);
  provider.destroy();
  process.exit(1);
}
