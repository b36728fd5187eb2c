// node-oidc-provider 9 configured like idp for the benchmark rows:
// * client_credentials with Basic auth, ES256 JWT access tokens (typ at+jwt) for the API
//   resource through a default resource indicator, scopes "api:read api:write", TTL 600 s;
// * authorization code + PKCE (S256) with an RS256 ID token and a refresh token
//   (offline_access), rotated on every use; userinfo, introspection and revocation enabled;
// * DPoP (RFC 9449, features.dPoP) with its defaults: no server nonce, proofs ES256/Ed25519/EdDSA.
// One process uses the in-memory adapter; more processes (node cluster) share a Redis adapter.
//
// Authorization codes and opaque access tokens are minted for the benchmark through
// POST /__bench/mint (the provider's own models, outside the measured requests), because
// the peer's login is the embedding application's job, not the library's.
//
// usage: node bench/peer/server.mjs CONFIG.json   (written by bench/server.py)
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { default: Provider, errors } = await import(
  pathToFileURL(`${config.modules}/oidc-provider/lib/index.js`).href
);

if (config.processes > 1 && cluster.isPrimary) {
  for (let i = 0; i < config.processes; i += 1) cluster.fork();
  cluster.on('exit', (worker, code) => {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  await serve();
}

function redisAdapter(prefix) {
  const require = createRequire(`${config.modules}/`);
  const Redis = require('ioredis');
  const client = new Redis(config.redis_url, { keyPrefix: prefix });
  // The adapter from oidc-provider's example/adapters/redis.js, trimmed to what is used here.
  const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
  const consumable = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
  const grantKeyFor = (id) => `grant:${id}`;
  return class RedisAdapter {
    constructor(name) { this.name = name; }

    key(id) { return `${this.name}:${id}`; }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const multi = client.multi();
      if (consumable.has(this.name)) multi.hset(key, { payload: JSON.stringify(payload) });
      else multi.set(key, JSON.stringify(payload));
      if (expiresIn) multi.expire(key, expiresIn);
      if (grantable.has(this.name) && payload.grantId) {
        const grantKey = grantKeyFor(payload.grantId);
        multi.rpush(grantKey, key);
        const ttl = await client.ttl(grantKey);
        if (expiresIn > ttl) multi.expire(grantKey, expiresIn);
      }
      if (payload.uid) {
        multi.set(`uid:${payload.uid}`, id);
        if (expiresIn) multi.expire(`uid:${payload.uid}`, expiresIn);
      }
      await multi.exec();
    }

    async find(id) {
      const data = consumable.has(this.name)
        ? await client.hgetall(this.key(id))
        : await client.get(this.key(id));
      if (!data || (typeof data === 'object' && !Object.keys(data).length)) return undefined;
      if (typeof data === 'string') return JSON.parse(data);
      const { payload, ...rest } = data;
      return { ...rest, ...JSON.parse(payload) };
    }

    async findByUid(uid) {
      const id = await client.get(`uid:${uid}`);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode() { return undefined; }

    async consume(id) {
      await client.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
    }

    async destroy(id) { await client.del(this.key(id)); }

    async revokeByGrantId(grantId) {
      const multi = client.multi();
      const tokens = await client.lrange(grantKeyFor(grantId), 0, -1);
      tokens.forEach((token) => multi.del(token.startsWith(prefix) ? token.slice(prefix.length) : token));
      multi.del(grantKeyFor(grantId));
      await multi.exec();
    }
  };
}

// The default MemoryAdapter is an LRU of 1,000 entries: a benchmark's code pool would
// evict itself. This one keeps everything until it expires (one process only).
function mapAdapter() {
  const store = new Map();
  const grants = new Map();
  const now = () => Math.floor(Date.now() / 1000);
  return class MapAdapter {
    constructor(name) { this.name = name; }

    key(id) { return `${this.name}:${id}`; }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      store.set(key, { payload: { ...payload }, exp: expiresIn ? now() + expiresIn : undefined });
      if (payload.grantId) {
        const list = grants.get(payload.grantId) || [];
        list.push(key);
        grants.set(payload.grantId, list);
      }
      if (payload.uid) store.set(`uid:${payload.uid}`, { payload: id });
    }

    async find(id) {
      const entry = store.get(this.key(id));
      if (!entry) return undefined;
      if (entry.exp && entry.exp < now()) { store.delete(this.key(id)); return undefined; }
      return entry.payload;
    }

    async findByUid(uid) {
      const entry = store.get(`uid:${uid}`);
      return entry ? this.find(entry.payload) : undefined;
    }

    async findByUserCode() { return undefined; }

    async consume(id) {
      const entry = store.get(this.key(id));
      if (entry) entry.payload.consumed = now();
    }

    async destroy(id) { store.delete(this.key(id)); }

    async revokeByGrantId(grantId) {
      for (const key of grants.get(grantId) || []) store.delete(key);
      grants.delete(grantId);
    }
  };
}

async function serve() {
  const { service, web, user } = config.clients;
  const AUD = config.audience;
  const account = {
    accountId: user.sub,
    async claims() {
      return {
        sub: user.sub, name: 'Bench User', preferred_username: user.username, email: 'bench@example.com', email_verified: false,
      };
    },
  };

  const provider = new Provider(config.issuer, {
    adapter: config.redis_url ? redisAdapter(config.redis_prefix) : mapAdapter(),
    clients: [
      {
        client_id: service.client_id,
        client_secret: service.client_secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: config.api_scope,
      },
      {
        client_id: web.client_id,
        client_secret: web.client_secret,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [web.redirect_uri],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
      },
    ],
    jwks: { keys: config.keys },
    cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
    claims: {
      openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read', 'api:write'],
    findAccount: async (ctx, sub) => (sub === user.sub ? account : undefined),
    pkce: { required: () => true },
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: config.access_token_ttl,
      ClientCredentials: config.access_token_ttl,
      AuthorizationCode: 600,
      IdToken: 900,
      RefreshToken: 30 * 86400,
      Grant: 90 * 86400,
      Interaction: 600,
      Session: 30 * 86400,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true },
      // The token's own client, or the service client acting as a resource server.
      introspection: { enabled: true, allowedPolicy: (ctx, caller, token) => caller.clientId === token.clientId || caller.clientId === service.client_id },
      revocation: { enabled: true, allowedPolicy: (ctx, caller, token) => caller.clientId === token.clientId },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client) => (client.clientId === service.client_id ? AUD : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resource) {
          if (resource !== AUD) throw new errors.InvalidTarget();
          return {
            scope: config.api_scope,
            audience: AUD,
            accessTokenTTL: config.access_token_ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  });
  provider.proxy = false;
  if (config.debug) {
    for (const event of ['grant.error', 'server_error', 'introspection.error', 'revocation.error', 'userinfo.error']) {
      provider.on(event, (ctx, err) => console.error(event, err.error_detail || err.message));
    }
  }

  // Benchmark setup only: mint codes (PKCE S256) and opaque user access tokens.
  provider.use(async (ctx, next) => {
    if (ctx.path !== '/__bench/mint' || ctx.method !== 'POST') return next();
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const { kind, n, code_challenge: codeChallenge } = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    const client = await provider.Client.find(web.client_id);
    const scope = 'openid profile email offline_access';
    const authTime = Math.floor(Date.now() / 1000);
    const out = [];
    for (let i = 0; i < Math.min(n || 1, 20000); i += 1) {
      // One grant per code, as if each came from its own authorization: revoking one
      // refresh token (which revokes its grant) leaves the others alone.
      const grant = new provider.Grant({ accountId: user.sub, clientId: web.client_id });
      grant.addOIDCScope(scope);
      const grantId = await grant.save();
      if (kind === 'code') {
        const code = new provider.AuthorizationCode({
          accountId: user.sub, client, grantId, scope, authTime, redirectUri: web.redirect_uri,
          codeChallenge, codeChallengeMethod: 'S256', acr: 'urn:bench', amr: ['pwd'],
        });
        out.push(await code.save());
      } else if (kind === 'access') {
        const at = new provider.AccessToken({
          accountId: user.sub, client, grantId, scope: 'openid profile email', gty: 'authorization_code',
        });
        out.push(await at.save());
      }
    }
    ctx.type = 'json';
    ctx.body = JSON.stringify({ values: out });
    return undefined;
  });

  provider.listen(config.port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}
