// A real OpenID Connect provider for Tandem's sign-in tests: the stock `oidc-provider`
// package (v9, certified OpenID Provider software), not a mock. Tandem discovers it, sends
// browsers to its authorization endpoint, exchanges codes at its token endpoint and verifies
// its ID tokens against its published keys, exactly as with any other issuer.
//
//   node oidc_provider.mjs [--port N] [--exit-with-stdin]
//
// It listens on 127.0.0.1 (port 0, the default, picks a free one) and prints one JSON line,
// {"issuer": "http://127.0.0.1:PORT", "port": PORT}, once it accepts connections. With
// --exit-with-stdin it exits when its stdin closes, so it cannot outlive a test that dies.
//
// Clients: the env variable OIDC_CLIENTS (a JSON array of client metadata) configures them at
// start. Without it, the provider waits for `POST /__test/clients` (below) and answers 503
// until then: a test learns Tandem's redirect URI (its port) only after Tandem has started,
// and Tandem has to be told the issuer before that.
//
// Sign-in uses oidc-provider's built-in development interactions (`devInteractions`): a
// login form that accepts any login and password, then a consent form. The account's id and
// email are the login typed (so log in as "ada@example.com"), verified, with a name made
// from it. PKCE is required of every client.
//
// TEST-ONLY endpoints under /__test/ (never part of a real provider):
//
//   POST /__test/clients {"clients": [{client_id, client_secret, redirect_uris,
//        id_token_signed_response_alg?}], "conform_id_token_claims": false}
//     Creates the provider with these clients (once). With conform_id_token_claims true
//     (oidc-provider's default) the ID token carries only `sub` and the email must come from
//     the userinfo endpoint; with false (the default here, as at Google) it carries the email.
//
//   POST /__test/next_id_token {"mode": MODE}
//     Simulates a misbehaving or compromised issuer: the next token endpoint response's
//     id_token is replaced by an altered one, re-signed with the provider's own signing key
//     (so only the altered claim is wrong), or with its signature corrupted. MODE is one of:
//       wrong_audience   aud = "someone-else"
//       expired          iat two hours ago, exp one hour ago
//       wrong_nonce      nonce replaced
//       wrong_issuer     iss = "http://evil.example"
//       unverified_email email_verified = false
//       bad_signature    the real token with one bit of its signature flipped
//       unknown_key      signed with a key the provider does not publish (kid "rogue")
//   The hook is a koa middleware on the provider (`provider.use`) that runs after the token
//   endpoint and rewrites its JSON body; everything else is oidc-provider's own behaviour.

import { randomBytes } from 'node:crypto';
import * as http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const MODES = new Set([
  'wrong_audience',
  'expired',
  'wrong_nonce',
  'wrong_issuer',
  'unverified_email',
  'bad_signature',
  'unknown_key',
]);

function parseArgs(argv) {
  const args = { port: 0, exitWithStdin: false };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--exit-with-stdin') {
      args.exitWithStdin = true;
    } else if (argv[i] === '--port') {
      args.port = Number(argv[(i += 1)]);
    } else {
      throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return args;
}

// The provider's signing keys. Generated here rather than left to oidc-provider so the tamper
// hook can sign with the very same private keys.
async function signingKey(alg, kid) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
  return { jwk, privateKey };
}

const keys = {
  'rs-1': await signingKey('RS256', 'rs-1'),
  'es-1': await signingKey('ES256', 'es-1'),
};
const rogue = await signingKey('RS256', 'rogue');

function nameOf(login) {
  const local = String(login).split('@')[0] || 'user';
  return local.charAt(0).toUpperCase() + local.slice(1);
}

let nextTamper = null;

async function tamper(idToken, mode) {
  if (mode === 'bad_signature') {
    const [header, payload, signature] = idToken.split('.');
    const bytes = Buffer.from(signature, 'base64url');
    bytes[0] ^= 0x01;
    return `${header}.${payload}.${bytes.toString('base64url')}`;
  }
  const header = jose.decodeProtectedHeader(idToken);
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  let key = keys[header.kid];
  switch (mode) {
    case 'wrong_audience':
      claims.aud = 'someone-else';
      break;
    case 'expired':
      claims.iat = now - 7200;
      claims.exp = now - 3600;
      break;
    case 'wrong_nonce':
      claims.nonce = 'not-the-nonce-tandem-sent';
      break;
    case 'wrong_issuer':
      claims.iss = 'http://evil.example';
      break;
    case 'unverified_email':
      claims.email_verified = false;
      break;
    case 'unknown_key':
      key = rogue;
      header.kid = 'rogue';
      header.alg = 'RS256';
      break;
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(key.privateKey);
}

function createProvider(issuer, clients, conformIdTokenClaims) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: Object.values(keys).map((k) => k.jwk) },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    conformIdTokenClaims,
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    // Lifetimes in seconds (set, so oidc-provider does not warn about its defaults).
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
    },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id, email_verified: true, name: nameOf(id) };
        },
      };
    },
  });
  // The tamper hook (see the top of this file): after the token endpoint has answered.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || ctx.status !== 200 || !nextTamper) {
      return;
    }
    const body = ctx.body;
    if (!body || typeof body.id_token !== 'string') {
      return;
    }
    const mode = nextTamper;
    nextTamper = null;
    body.id_token = await tamper(body.id_token, mode);
    process.stderr.write(`oidc_provider: tampered the ID token (${mode})\n`);
  });
  return provider;
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const args = parseArgs(process.argv.slice(2));
let issuer;
let handler = null;

function configure(clients, conformIdTokenClaims) {
  const provider = createProvider(issuer, clients, conformIdTokenClaims);
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`oidc_provider: server error: ${err.stack}\n`);
  });
  handler = provider.callback();
}

async function admin(req, res) {
  try {
    if (req.method === 'POST' && req.url === '/__test/clients') {
      if (handler) {
        return send(res, 409, { error: 'clients are already configured' });
      }
      const body = await readJson(req);
      configure(body.clients, body.conform_id_token_claims ?? false);
      return send(res, 200, { ok: true });
    }
    if (req.method === 'POST' && req.url === '/__test/next_id_token') {
      const { mode } = await readJson(req);
      if (!MODES.has(mode)) {
        return send(res, 400, { error: `mode must be one of ${[...MODES].join(', ')}` });
      }
      nextTamper = mode;
      return send(res, 200, { ok: true });
    }
    return send(res, 404, { error: 'no such test endpoint' });
  } catch (err) {
    return send(res, 400, { error: String(err) });
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/__test/')) {
    admin(req, res);
  } else if (handler) {
    handler(req, res);
  } else {
    send(res, 503, {
      error: 'temporarily_unavailable',
      error_description: 'no client is configured yet (POST /__test/clients)',
    });
  }
});

server.listen(args.port, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  if (process.env.OIDC_CLIENTS) {
    configure(JSON.parse(process.env.OIDC_CLIENTS), false);
  }
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

if (args.exitWithStdin) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
