import { WebsocketProvider } from 'y-websocket';
import { YNotebook } from '@jupyter/ydoc';
import WebSocket from 'ws';
const nb = new YNotebook();
const p = new WebsocketProvider(process.argv[2], process.argv[3], nb.ydoc, { WebSocketPolyfill: WebSocket, disableBc: true });
p.on('sync', s => { if (!s) return; console.log(JSON.stringify(nb.toJSON())); p.destroy(); process.exit(0); });
