// Stock Yjs clients (yjs + y-websocket's WebsocketProvider, no Tandem code) in one notebook,
// counting the awareness frames each receives, for Tandem's presence test
// (tests/tests/presence.rs).
//
// Usage:
//   node presence_clients.mjs <plan.json>
//
// The plan: { "ws_url", "notebook_id", "token", "clients": N }
//
// Every client announces a name and waits until it sees all N. Then client 0 does three
// things, one at a time, and after each the script counts the awareness frames describing
// client 0 that every other client received:
//   - "change": sets a cursor (a new state);
//   - "renewal": sets the same state again (a newer clock only, as the 15 s renewal does);
//   - "leave": disconnects (its state is removed).
// After each step it waits until every peer has applied it, then for two barrier rounds of
// document edits from every client (each client edits after it saw the step, so the server
// handled its echo of the step before its edit; the second round makes sure anything the
// server sent in answer to those echoes has arrived too), and only then reads the counts.
// Stock providers send back every awareness change they apply, so a server that relays
// echoes shows up here as more than one frame per peer.
//
// Prints one JSON line: { "steps": { "change": [frames per peer], ... } }.

import { readFileSync } from 'node:fs';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import * as decoding from 'lib0/decoding';

const TIMEOUT_MS = 60_000;
const AWARENESS = 1;

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const log = (...args) => console.error('[presence]', ...args);
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function waitFor(what, predicate) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(5);
  }
}

// The client ids an awareness message describes.
function describedClients(bytes) {
  const decoder = decoding.createDecoder(bytes);
  if (decoding.readVarUint(decoder) !== AWARENESS) {
    return [];
  }
  const update = decoding.createDecoder(decoding.readVarUint8Array(decoder));
  const ids = [];
  for (let n = decoding.readVarUint(update); n > 0; n--) {
    ids.push(decoding.readVarUint(update));
    decoding.readVarUint(update);
    decoding.readVarString(update);
  }
  return ids;
}

// Counts, per client, the awareness frames its socket receives that describe the watched
// client (others' 15 s renewals may come at any time and are not what a step measures): a
// WebSocket that counts, given to the provider as its WebSocket implementation.
const frames = [];
let watched = null;
function countingSocket(index) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on('message', data => {
        if (describedClients(new Uint8Array(data)).includes(watched)) {
          frames[index] += 1;
        }
      });
    }
  };
}

const clients = [];
for (let i = 0; i < plan.clients; i++) {
  frames.push(0);
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(plan.ws_url, plan.notebook_id, doc, {
    params: { token: plan.token },
    WebSocketPolyfill: countingSocket(i),
    disableBc: true
  });
  provider.on('connection-close', event => log(`client ${i} closed`, event?.code, event?.reason));
  clients.push({ doc, provider, awareness: provider.awareness });
}

const others = clients.slice(1);
const sender = clients[0];
const senderId = sender.doc.clientID;
watched = senderId;
let round = 0;

// Every client edits once it has seen `done` hold, twice over; then every client has every edit.
async function barrier(peers) {
  for (let pass = 0; pass < 2; pass++) {
    round += 1;
    const key = `round-${round}`;
    for (const client of peers) {
      client.doc.getMap('barrier').set(`${key}-${client.doc.clientID}`, true);
    }
    await waitFor(`barrier ${key}`, () =>
      peers.every(client =>
        peers.every(peer => client.doc.getMap('barrier').get(`${key}-${peer.doc.clientID}`))
      )
    );
  }
}

function counted(peers, before) {
  return peers.map(client => frames[clients.indexOf(client)] - before[clients.indexOf(client)]);
}

try {
  await waitFor('initial sync', () => clients.every(client => client.provider.synced));
  clients.forEach((client, i) => client.awareness.setLocalStateField('user', { name: `p${i}` }));
  await waitFor('everyone sees everyone', () =>
    clients.every(client => client.awareness.getStates().size >= plan.clients)
  );
  await barrier(clients);
  log(`${plan.clients} clients see each other`);

  const steps = {};

  let before = [...frames];
  sender.awareness.setLocalStateField('cursor', { cell: 'c1', index: 3 });
  await waitFor('the change at every peer', () =>
    others.every(client => client.awareness.getStates().get(senderId)?.cursor?.index === 3)
  );
  await barrier(clients);
  steps.change = counted(others, before);

  before = [...frames];
  const clock = () => sender.awareness.meta.get(senderId).clock;
  const renewed = clock() + 1;
  sender.awareness.setLocalState(sender.awareness.getLocalState());
  await waitFor('the renewal at every peer', () =>
    others.every(client => client.awareness.meta.get(senderId)?.clock === renewed)
  );
  await barrier(clients);
  steps.renewal = counted(others, before);

  before = [...frames];
  sender.provider.destroy();
  await waitFor('the departure at every peer', () =>
    others.every(client => !client.awareness.getStates().has(senderId))
  );
  await barrier(others);
  steps.leave = counted(others, before);

  console.log(JSON.stringify({ steps }));
  for (const client of others) {
    client.provider.destroy();
  }
  await sleep(200);
  process.exit(0);
} catch (error) {
  log(error?.stack ?? error);
  process.exit(1);
}
