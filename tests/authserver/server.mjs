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
//
// App-only clients (no person signs in), each registered only when its key
// is given:
// TOKEND_TEST_APP_CERT: the PEM certificate of `tokend-app`, a client
//   credentials client authenticating with private_key_jwt (RFC 7523 2.2).
//   `tokend-app-secret` (secret test-app-secret, client_secret_post) is
//   always there.  Their tokens are introspected with sub "app:CLIENT_ID":
//   an app is nobody's mailbox.
// TOKEND_TEST_SA_CERT, TOKEND_TEST_SA_ISSUER, TOKEND_TEST_SA_SUBJECTS: a
//   service account (`tokend-sa`) whose signed assertions (RFC 7523 2.1,
//   registered with registerGrantType) get a token acting for one of the
//   comma-separated subjects, as Google's domain-wide delegation does;
//   another subject is invalid_grant.
// TOKEND_TEST_SECRET_BASIC_ONLY=1: client secrets only in HTTP Basic
//   (clientAuthMethods without client_secret_post, so the metadata's
//   token_endpoint_auth_methods_supported does not list it), and the
//   secret clients registered with client_secret_basic.
// TOKEND_TEST_ID_TOKEN_CLAIMS: all (default: the scopes' claims in the ID
// token as well) or conform (oidc-provider's own default: an ID token that
// comes with an access token carries sub alone, the rest is at userinfo).

import {
  X509Certificate, constants, createHash, generateKeyPairSync, randomBytes, verify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

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

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
// mail.send stands for Microsoft Graph's Mail.Send (tests/harness/graph_testserver.py).
const APP_SCOPE = 'mail.imap mail.smtp mail.send';

// The public key of a PEM certificate as a JWK, with its thumbprint.
function certJwk(path) {
  const cert = new X509Certificate(readFileSync(path));
  const thumb = createHash('sha256').update(cert.raw).digest('base64url');
  return { ...cert.publicKey.export({ format: 'jwk' }), use: 'sig', 'x5t#S256': thumb };
}

clients.push({
  client_id: 'tokend-app-secret',
  client_secret: 'test-app-secret',
  token_endpoint_auth_method: 'client_secret_post',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: APP_SCOPE,
});
if (process.env.TOKEND_TEST_APP_CERT) {
  clients.push({
    client_id: 'tokend-app',
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: APP_SCOPE,
    jwks: { keys: [certJwk(process.env.TOKEND_TEST_APP_CERT)] },
  });
}
const serviceAccount = process.env.TOKEND_TEST_SA_CERT ? {
  key: new X509Certificate(readFileSync(process.env.TOKEND_TEST_SA_CERT)).publicKey,
  issuer: process.env.TOKEND_TEST_SA_ISSUER,
  subjects: new Set((process.env.TOKEND_TEST_SA_SUBJECTS ?? '').split(',').filter(Boolean)),
} : null;
if (serviceAccount) {
  clients.push({
    client_id: 'tokend-sa',
    token_endpoint_auth_method: 'none',
    grant_types: [JWT_BEARER],
    response_types: [],
    redirect_uris: [],
    scope: APP_SCOPE,
  });
}

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
// token_auth: how each token request carried a client secret: basic (an
// Authorization header), post (client_secret in the body) or none.
const newStats = () => ({
  token: {}, endpoints: {}, authorization: [], refresh_scopes: [], token_auth: [],
});
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
    const inBody = new URLSearchParams(body).has('client_secret');
    stats.token_auth.push(ctx.get('authorization') ? 'basic' : inBody ? 'post' : 'none');
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

const secretBasicOnly = process.env.TOKEND_TEST_SECRET_BASIC_ONLY === '1';
if (secretBasicOnly) {
  for (const c of clients) {
    if (c.token_endpoint_auth_method === 'client_secret_post') {
      c.token_endpoint_auth_method = 'client_secret_basic';
    }
  }
}
const clientAuthMethods = ['client_secret_basic', 'client_secret_jwt', 'private_key_jwt', 'none',
  ...(secretBasicOnly ? [] : ['client_secret_post'])];

const provider = new Provider(`https://127.0.0.1:${port}`, {
  clients,
  clientAuthMethods,
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'mail.imap', 'mail.smtp', 'mail.send', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username'] },
  conformIdTokenClaims: idTokenClaims === 'conform',
  async findAccount(_ctx, sub) {
    return { accountId: sub, claims: async () => ({ sub, ...PROFILES[sub] }) };
  },
  async extraTokenClaims(_ctx, token) {
    return token.kind === 'ClientCredentials' ? { sub: `app:${token.clientId}` } : undefined;
  },
  features: {
    clientCredentials: { enabled: true },
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
    ClientCredentials: accessTtl,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
});
// RFC 7523 2.1: the assertion is the grant.  RS256 or PS256, signed by the
// service account, for this token endpoint, not expired, and acting for a
// subject the account is allowed (else invalid_grant, as Google answers).
const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
async function jwtBearerGrant(ctx) {
  const { InvalidGrant } = errors;
  const parts = String(ctx.oidc.params.assertion ?? '').split('.');
  if (parts.length !== 3) throw new InvalidGrant('assertion is not a JWT');
  const [header, claims] = [b64json(parts[0]), b64json(parts[1])];
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2], 'base64url');
  const key = header.alg === 'PS256'
    ? { key: serviceAccount.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
    : serviceAccount.key;
  const now = Math.floor(Date.now() / 1000);
  if (!['RS256', 'PS256'].includes(header.alg) || !verify('sha256', signed, key, sig)) {
    throw new InvalidGrant('assertion signature is not valid');
  }
  if (claims.iss !== serviceAccount.issuer || claims.aud !== provider.issuer + '/token'
      || !(claims.exp > now) || claims.exp - claims.iat > 3600) {
    throw new InvalidGrant('assertion claims are not valid');
  }
  if (!serviceAccount.subjects.has(claims.sub)) {
    throw new InvalidGrant('Not a valid email or user ID.');
  }
  const at = new provider.AccessToken({
    accountId: claims.sub, client: ctx.oidc.client, gty: 'jwt_bearer', scope: claims.scope,
  });
  ctx.body = {
    access_token: await at.save(), expires_in: at.expiration, token_type: 'Bearer', scope: at.scope,
  };
}
if (serviceAccount) provider.registerGrantType(JWT_BEARER, jwtBearerGrant, ['assertion']);

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
