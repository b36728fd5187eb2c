// A public client (a mobile app) on oauth4webapi, unchanged: code + PKCE + DPoP, userinfo, refresh, an API call.
//
// Driven by tests/integration/test_e2e_dpop_oauth4webapi.py over stdin/stdout, one JSON line each way:
// it prints {"authorize": url}, reads back the redirect URL the browser was sent to, then prints what
// it got ({"tokens": ..., "userinfo": ..., "api": ..., ...}) or {"error": ...}.
//
// env: ISSUER, CLIENT_ID, REDIRECT_URI, SCOPE, API_URL, DPOP_ALG (ES256 | Ed25519 | RS256 | PS256)
import * as oauth from 'oauth4webapi'
import readline from 'node:readline'

const env = process.env
const insecure = { [oauth.allowInsecureRequests]: true } // the test servers listen on http://127.0.0.1
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n')
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()

// RFC 9449 §8 / §9: a server may demand a nonce; the DPoP handle keeps the one it was given, so once more.
let nonceRetries = 0
async function retryingNonce(attempt) {
  try {
    return await attempt()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    nonceRetries += 1
    return attempt()
  }
}

async function main() {
  const issuer = new URL(env.ISSUER)
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure))
  const client = { client_id: env.CLIENT_ID }
  const clientAuth = oauth.None()
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair(env.DPOP_ALG || 'ES256'))

  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const authorize = new URL(as.authorization_endpoint)
  authorize.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: env.REDIRECT_URI,
    response_type: 'code',
    scope: env.SCOPE,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    dpop_jkt: await DPoP.calculateThumbprint(), // RFC 9449 §10: the code is bound to this key too
  }).toString()
  out({ authorize: authorize.href, jkt: await DPoP.calculateThumbprint() })

  const callback = new URL((await lines.next()).value)
  const params = oauth.validateAuthResponse(as, client, callback, state)
  const tokens = await retryingNonce(async () =>
    oauth.processAuthorizationCodeResponse(
      as, client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, env.REDIRECT_URI, verifier, { DPoP, ...insecure }),
    ))
  const sub = oauth.getValidatedIdTokenClaims(tokens).sub

  const userinfo = await retryingNonce(async () =>
    oauth.processUserInfoResponse(as, client, sub, await oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure })))

  const callApi = async (accessToken) => {
    const response = await retryingNonce(() =>
      oauth.protectedResourceRequest(accessToken, 'GET', new URL(env.API_URL), undefined, undefined, { DPoP, ...insecure }))
    return { status: response.status, body: await response.json() }
  }
  const api = await callApi(tokens.access_token)

  const refreshed = await retryingNonce(async () =>
    oauth.processRefreshTokenResponse(
      as, client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, { DPoP, ...insecure }),
    ))
  const apiAfterRefresh = await callApi(refreshed.access_token)

  out({ tokens, sub, userinfo, api, refreshed, apiAfterRefresh, nonceRetries })
}

main().then(
  () => process.exit(0),
  (err) => {
    out({ error: String(err?.stack || err), cause: err?.cause ?? null, status: err?.status ?? err?.response?.status ?? null })
    process.exit(1)
  },
)
