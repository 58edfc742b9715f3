// OAuth 2.0 / OpenID Connect authorization server for tokend's integration tests.
//
// Usage: node server.mjs [--port N] [--cert FILE] [--key FILE]
// or env TOKEND_TEST_AS_PORT, TOKEND_TEST_AS_CERT, TOKEND_TEST_AS_KEY.
// Port 0 picks a free port. Prints "READY <port>" once listening.
// TOKEND_TEST_ACCESS_TTL sets the access token lifetime in seconds (default 3600).
// TOKEND_TEST_REFRESH_TOKENS: offline_access (default, the provider's own
// rule: a refresh token only when offline_access was granted) or always (one
// for every code grant of a client allowed to refresh, as deployments
// configure with issueRefreshToken; offline_access is still dropped from the
// grant without prompt=consent).
// TOKEND_TEST_ID_TOKEN_CLAIMS: all (default: the scopes' claims in the ID
// token as well) or conform (oidc-provider's own default: an ID token that
// comes with an access token carries sub alone, the rest is at userinfo).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.TOKEND_TEST_AS_PORT ?? '0' },
    cert: { type: 'string', default: process.env.TOKEND_TEST_AS_CERT },
    key: { type: 'string', default: process.env.TOKEND_TEST_AS_KEY },
  },
});
if (!args.cert || !args.key) {
  console.error('server.mjs: --cert and --key (or TOKEND_TEST_AS_CERT/KEY) are required');
  process.exit(2);
}
const accessTtl = Number.parseInt(process.env.TOKEND_TEST_ACCESS_TTL ?? '3600', 10);
if (!(accessTtl > 0)) {
  console.error('server.mjs: TOKEND_TEST_ACCESS_TTL must be a positive integer');
  process.exit(2);
}

const refreshTokens = process.env.TOKEND_TEST_REFRESH_TOKENS ?? 'offline_access';
if (!['offline_access', 'always'].includes(refreshTokens)) {
  console.error('server.mjs: TOKEND_TEST_REFRESH_TOKENS must be offline_access or always');
  process.exit(2);
}

const idTokenClaims = process.env.TOKEND_TEST_ID_TOKEN_CLAIMS ?? 'all';
if (!['all', 'conform'].includes(idTokenClaims)) {
  console.error('server.mjs: TOKEND_TEST_ID_TOKEN_CLAIMS must be all or conform');
  process.exit(2);
}

const LOOPBACK = 'http://127.0.0.1/';
const clients = [
  {
    client_id: 'tokend-native',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    redirect_uris: [LOOPBACK, 'http://127.0.0.1/callback', 'http://localhost/'],
  },
  {
    client_id: 'tokend-paste',
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['https://login.example.invalid/common/oauth2/nativeclient'],
  },
  {
    client_id: 'tokend-secret',
    client_secret: 'test-client-secret',
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [LOOPBACK],
  },
  {
    client_id: 'dovecot',
    client_secret: 'dovecot-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
  },
];

// The users' profile claims, as an operator keeps them in a directory; a
// login name not listed here has only its subject.  With the `email` and
// `profile` scopes they are at userinfo, and in the ID token as well unless
// TOKEND_TEST_ID_TOKEN_CLAIMS=conform.
const PROFILES = {
  alice: { email: 'Alice.Smith@Example.ORG', email_verified: true, preferred_username: 'alice' },
  mallory: { email: 'mallory@example.net', email_verified: true, preferred_username: 'mallory' },
};

// Counts requests as they arrive, before the provider sees them.
const ENDPOINTS = {
  '/.well-known/openid-configuration': 'discovery',
  '/auth': 'authorization',
  '/token': 'token',
  '/device/auth': 'device_authorization',
  '/device': 'device_verification',
  '/token/introspection': 'introspection',
  '/token/revocation': 'revocation',
  '/me': 'userinfo',
  '/jwks': 'jwks',
};
// authorization: scope and prompt of each authorization request;
// refresh_scopes: the scope parameter of each refresh request (null if none).
const newStats = () => ({ token: {}, endpoints: {}, authorization: [], refresh_scopes: [] });
let stats = newStats();
const bump = (table, key) => { table[key] = (table[key] ?? 0) + 1; };

async function readRawBody(req) {
  const chunks = [];
  for await (const chunk of req.iterator({ destroyOnReturn: false })) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function testEndpoints(ctx, next) {
  if (ctx.path === '/test/stats' && ctx.method === 'GET') {
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/test/reset-stats' && ctx.method === 'POST') {
    stats = newStats();
    ctx.status = 204;
    return;
  }
  const endpoint = ENDPOINTS[ctx.path];
  if (endpoint) bump(stats.endpoints, endpoint);
  if (endpoint === 'authorization' && ctx.method === 'GET') {
    stats.authorization.push({ scope: ctx.query.scope ?? null, prompt: ctx.query.prompt ?? null });
  }
  if (endpoint === 'token' && ctx.method === 'POST') {
    // The provider accepts an already read body as req.body.
    const body = await readRawBody(ctx.req);
    ctx.req.body = body;
    const grantType = ctx.is('application/x-www-form-urlencoded')
      ? new URLSearchParams(body).get('grant_type') : null;
    bump(stats.token, grantType ?? 'none');
    if (grantType === 'refresh_token') {
      // What a refresh asks for: the scope parameter, or null when left out.
      stats.refresh_scopes.push(new URLSearchParams(body).get('scope'));
    }
  }
  await next();
}

const server = createServer({ cert: readFileSync(args.cert), key: readFileSync(args.key) });
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
const { port } = server.address();

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'test' };

const provider = new Provider(`https://127.0.0.1:${port}`, {
  clients,
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'mail.imap', 'mail.smtp', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username'] },
  conformIdTokenClaims: idTokenClaims === 'conform',
  async findAccount(_ctx, sub) {
    return { accountId: sub, claims: async () => ({ sub, ...PROFILES[sub] }) };
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none'
        || token.clientId === client.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
  },
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (refreshTokens === 'always' || code.scopes.has('offline_access')),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error:', err));
provider.on('grant.error', (_ctx, err) => console.error('grant.error:', err.error, err.error_detail || err.error_description));
provider.use(testEndpoints);
server.on('request', provider.callback());

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
process.on('SIGINT', () => process.exit(0));

console.log(`READY ${port}`);
