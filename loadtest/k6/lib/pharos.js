// What the k6 scripts send to a Pharos worker, in one place: the base URL and its default
// port, the bearer scheme, every route and method, and the status each answer should have.
// Plain JavaScript with no k6 import, so loadtest/test/k6.test.ts can import
// it in Node and replay every request against a real worker: a renamed route, a changed
// method or auth scheme, or a moved default port fails that test, not a load test at 3 a.m.

/** PHAROS_HTTP_HOST and PHAROS_HTTP_PORT defaults (services/beacon/src/config/schema.ts). */
export const DEFAULT_BASE_URL = 'http://127.0.0.1:8080'

/** Every route the scripts call. `auth: 'bearer'` routes carry `Authorization: Bearer <token>`. */
export const ROUTES = {
  pinsAdd: { method: 'POST', path: '/pins', auth: 'bearer', expect: [202] },
  pinsList: { method: 'GET', path: '/pins', auth: 'bearer', expect: [200] },
  pinsStatus: { method: 'GET', path: '/pins/{requestid}', auth: 'bearer', expect: [200] },
  pinsRemove: { method: 'DELETE', path: '/pins/{requestid}', auth: 'bearer', expect: [202] },
  gatewayRaw: { method: 'GET', path: '/ipfs/{cid}', auth: 'none', expect: [200] },
  gatewayHead: { method: 'HEAD', path: '/ipfs/{cid}', auth: 'none', expect: [200] },
  gatewayCar: { method: 'GET', path: '/ipfs/{cid}', auth: 'none', expect: [200] },
  gatewayMiss: { method: 'GET', path: '/ipfs/{cid}', auth: 'none', expect: [404] }
}

/** The trustless gateway's response types (services/beacon/src/http/routes/gateway.ts). */
export const RAW = 'application/vnd.ipld.raw'
export const CAR = 'application/vnd.ipld.car'

/**
 * A CID this service never holds, for the gateway's 404 path: sha2-256 of the empty block
 * (no pin holds an empty raw block; if yours does, set GATEWAY_MISS_CID).
 */
export const EMPTY_BLOCK_CID = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'

/** The environment variables the scripts read, with their defaults (loadtest/README.md documents each). */
export const ENV_DEFAULTS = {
  PHAROS_URL: DEFAULT_BASE_URL,
  PHAROS_PIN_TOKEN: '',
  VUS: '10',
  DURATION: '1m',
  KEEP_PINS: '0',
  GATEWAY_CIDS: '',
  GATEWAY_MISS_CID: EMPTY_BLOCK_CID
}

/**
 * The run's settings from `env` (k6's __ENV); wrong values throw naming the variable, so a
 * run with a typo stops at init instead of measuring the wrong thing.
 */
export function settings (env) {
  const value = (key) => {
    const text = env[key]
    return text === undefined || text === '' ? ENV_DEFAULTS[key] : String(text)
  }
  const baseUrl = value('PHAROS_URL').replace(/\/+$/, '')
  if (!/^https?:\/\/[^/]+$/.test(baseUrl)) throw new Error(`PHAROS_URL must be http(s)://host[:port] with no path, got ${JSON.stringify(baseUrl)}`)
  const vus = Number(value('VUS'))
  if (!Number.isInteger(vus) || vus < 1 || vus > 10000) throw new Error(`VUS must be an integer from 1 to 10000, got ${JSON.stringify(value('VUS'))}`)
  const duration = value('DURATION')
  if (!/^(\d+(ms|s|m|h))+$/.test(duration)) throw new Error(`DURATION must be a k6 duration such as 30s, 5m or 1h30m, got ${JSON.stringify(duration)}`)
  const keepPins = value('KEEP_PINS')
  if (keepPins !== '0' && keepPins !== '1') throw new Error(`KEEP_PINS must be 0 or 1, got ${JSON.stringify(keepPins)}`)
  const gatewayCids = value('GATEWAY_CIDS').split(',').map((cid) => cid.trim()).filter((cid) => cid.length > 0)
  return { baseUrl, token: value('PHAROS_PIN_TOKEN'), vus, duration, keepPins: keepPins === '1', gatewayCids, gatewayMissCid: value('GATEWAY_MISS_CID') }
}

/** One request as data: k6 sends it with http.request, the test with fetch. */
function request (run, routeName, params, { query, body, headers = {} } = {}) {
  const route = ROUTES[routeName]
  const path = route.path.replace(/\{(\w+)\}/g, (_, name) => {
    if (params[name] === undefined) throw new Error(`${routeName}: missing ${name}`)
    return encodeURIComponent(params[name])
  })
  const search = query === undefined ? '' : '?' + Object.entries(query).map(([key, item]) => `${encodeURIComponent(key)}=${encodeURIComponent(item)}`).join('&')
  const allHeaders = { ...headers }
  if (route.auth === 'bearer') allHeaders.Authorization = `Bearer ${run.token}`
  if (body !== undefined) allHeaders['Content-Type'] = 'application/json'
  return {
    name: routeName,
    method: route.method,
    url: run.baseUrl + path + search,
    body: body === undefined ? null : JSON.stringify(body),
    headers: allHeaders,
    expect: route.expect
  }
}

/** POST /pins: `runId` goes into the pin's meta, so a run's pins can be listed (and removed). */
export const addPin = (run, cid, runId) => request(run, 'pinsAdd', {}, { body: { cid, name: `k6 ${runId}`, meta: { loadtest: 'k6', run: runId } } })
/** GET /pins of this run's pins in any status, newest first. */
export const listPins = (run, runId, limit = 10) => request(run, 'pinsList', {}, { query: { status: 'queued,pinning,pinned,failed', meta: JSON.stringify({ run: runId }), limit } })
/** GET /pins of pinned pins: what the gateway script serves when GATEWAY_CIDS is unset. */
export const listPinned = (run, limit = 1000) => request(run, 'pinsList', {}, { query: { status: 'pinned', limit } })
export const pinStatus = (run, requestid) => request(run, 'pinsStatus', { requestid })
export const removePin = (run, requestid) => request(run, 'pinsRemove', { requestid })
export const gatewayRaw = (run, cid) => request(run, 'gatewayRaw', { cid }, { headers: { Accept: RAW } })
export const gatewayHead = (run, cid) => request(run, 'gatewayHead', { cid }, { headers: { Accept: RAW } })
export const gatewayCar = (run, cid) => request(run, 'gatewayCar', { cid }, { headers: { Accept: `${CAR};version=1;order=dfs` } })
export const gatewayMiss = (run) => request(run, 'gatewayMiss', { cid: run.gatewayMissCid }, { headers: { Accept: RAW } })

/**
 * CIDs a pinned-pins listing (`listPinned`) says hold blocks: identity pins (what
 * pinning-api.js adds) hold none and the gateway serves only stored blocks.
 */
export function heldCids (listing) {
  return listing.results.filter((pin) => pin.info !== undefined && Number(pin.info.dag_size) > 0).map((pin) => pin.pin.cid)
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

/**
 * A CIDv1 (raw codec, identity multihash) whose block is `text` itself. Pinning it needs no
 * network fetch and stores no block, so the load test measures the API and the pin queue,
 * not a content provider. `text` is ASCII and at most 100 characters (one-byte varint).
 */
export function identityCid (text) {
  if (!/^[\x20-\x7e]{1,100}$/.test(text)) throw new Error('identityCid: 1 to 100 printable ASCII characters')
  const bytes = [0x01, 0x55, 0x00, text.length]
  for (let i = 0; i < text.length; i++) bytes.push(text.charCodeAt(i))
  // RFC 4648 base32, lower case, no padding; multibase prefix "b".
  let out = 'b'
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= 0xff
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31]
  return out
}
