// A stock Yjs client for Tandem's scale-out tests (tests/tests/scale_out.rs): yjs +
// y-websocket's WebsocketProvider + @jupyter/ydoc's YNotebook, with no Tandem code, given a
// list of collab nodes. When its connection closes (its node was killed, or Redis went away)
// it reconnects to the next node of the list, as a client behind a load balancer would; the
// provider resyncs from its state vector, so what it typed while disconnected is sent then.
//
// Usage:
//   node cluster_client.mjs <plan.json>
//
// The plan:
//   { "urls": [ws roots], "start": index of the first node, "notebook_id", "token", "name",
//     "role": "writer" | "observer",
//     "reconnect": true to move on to the next node on close (else stay on the same one),
//     "peers": [names to wait for before editing],
//     "cells": [cell ids a writer appends to], "tokens": how many, "pause_ms", "seed",
//     "wait_done": [names of writers to wait for before printing],
//     "wait_outputs": { "cell", "text" } or null: also wait until that cell shows this output }
//
// A writer appends `<name>.<k>;` to each of its cells, one transaction per token, for k in
// 0..tokens, with seeded pauses; then marks itself done in the notebook metadata
// (`cluster_<name>`), waits for `wait_done` (and `wait_outputs`), waits until nothing changed
// for a while, and prints one JSON line: { notebook: YNotebook.toJSON(), closes, errors,
// connects }.
// An observer announces itself, then prints the same line as soon as its first connection
// closes and exits: what it had seen up to then.
// Progress goes to stderr, so stdout carries only the result.

import { readFileSync } from 'node:fs';
import { WebsocketProvider } from 'y-websocket';
import { YNotebook } from '@jupyter/ydoc';
import WebSocket from 'ws';

const TIMEOUT_MS = 120_000;
/// How long the document must stay unchanged before a writer prints it.
const QUIET_MS = 700;

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const log = (...args) => console.error(`[${plan.name}]`, ...args);

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
const random = rng(plan.seed ?? 1);
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

const nb = new YNotebook();
let node = plan.start ?? 0;
let connects = 0;
let lastChange = Date.now();
const closes = [];
const errors = [];
nb.ydoc.on('update', () => { lastChange = Date.now(); });

const provider = new WebsocketProvider(plan.urls[node], plan.notebook_id, nb.ydoc, {
  params: { token: plan.token },
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  // Keep retrying quickly while a node or Redis is away.
  maxBackoffTime: 1000
});
provider.on('status', event => {
  if (event.status === 'connected') {
    connects += 1;
    log('connected to', plan.urls[node]);
  }
});
provider.on('connection-error', event => {
  const message = event?.message ?? event?.error?.message ?? String(event);
  errors.push(message);
  log('connection error', message);
});

function result() {
  return JSON.stringify({ notebook: nb.toJSON(), closes, errors, connects }) + '\n';
}

let observed = false;
provider.on('connection-close', event => {
  closes.push({ code: event?.code ?? null, reason: event?.reason?.toString() ?? '' });
  log('connection closed', event?.code, event?.reason?.toString());
  if (plan.role === 'observer' && observed) {
    // What this client saw, and nothing after: it never reconnects.
    process.stdout.write(result(), () => process.exit(0));
    provider.shouldConnect = false;
    return;
  }
  if (plan.reconnect) {
    node = (node + 1) % plan.urls.length;
    provider.serverUrl = plan.urls[node];
  }
});

async function waitFor(what, predicate) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; metadata ${JSON.stringify(nb.toJSON().metadata)}`);
    }
    await sleep(20);
  }
}

const state = name => (nb.getMetadata(`cluster_${name}`) ?? {}).state;
const cellIndex = id => nb.cells.findIndex(cell => cell.id === id);

function outputsShown({ cell, text }) {
  const index = cellIndex(cell);
  if (index < 0) {
    return false;
  }
  const json = nb.getCell(index).toJSON();
  return json.execution_count != null && JSON.stringify(json.outputs ?? []).includes(text);
}

try {
  await waitFor('initial sync', () => provider.synced);
  log(`synced: ${nb.cells.length} cells`);
  nb.setMetadata(`cluster_${plan.name}`, { state: 'ready' });
  await waitFor('peers', () => (plan.peers ?? []).every(peer => state(peer) !== undefined));
  observed = true;
  if (plan.role === 'observer') {
    await sleep(TIMEOUT_MS);
    throw new Error('the observer\'s connection never closed');
  }

  for (let k = 0; k < plan.tokens; k++) {
    nb.transact(() => {
      for (const id of plan.cells) {
        const index = cellIndex(id);
        if (index < 0) {
          throw new Error(`cell ${id} is missing`);
        }
        const cell = nb.getCell(index);
        const end = cell.ysource.length;
        cell.updateSource(end, end, `${plan.name}.${k};`);
      }
    });
    await sleep(Math.floor(random() * 2 * (plan.pause_ms ?? 10)));
  }
  nb.setMetadata(`cluster_${plan.name}`, { state: 'done', tokens: plan.tokens });
  log('typed everything');

  await waitFor('writers done', () => (plan.wait_done ?? []).every(peer => state(peer) === 'done'));
  if (plan.wait_outputs) {
    await waitFor('outputs', () => outputsShown(plan.wait_outputs));
  }
  await waitFor('a quiet document', () => provider.synced && Date.now() - lastChange > QUIET_MS);
  process.stdout.write(result());
  provider.destroy();
  await sleep(200);
  process.exit(0);
} catch (error) {
  log('failed:', error?.stack ?? error);
  provider.destroy();
  process.exit(1);
}
