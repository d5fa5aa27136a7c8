import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { load as parseYaml } from 'js-yaml'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { pinningSpecValidator, testConfig, testLogger } from '../helpers/storage.ts'
import type { JsonBody } from '../helpers/storage.ts'

const PIN_TOKEN = 'app-token-0123456789abcdef'
const ADMIN_TOKEN = 'admin-token-0123456789abcdef'
const APP_ORIGIN = 'https://app.example.com'
const OTHER_ORIGIN = 'https://evil.example.net'

/** A preflight as a browser sends it before a cross-origin request it may not make simply. */
async function preflight (url: string, origin: string, method: string, headers?: string): Promise<Response> {
  return await fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, ...(headers === undefined ? {} : { 'access-control-request-headers': headers }) }
  })
}

/** Sends `request` as raw bytes and reads the answer until the server closes the connection. */
async function rawHttp (httpUrl: string, request: string): Promise<{ status: number, headers: string, body: string }> {
  const { hostname, port } = new URL(httpUrl)
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => { resolve(Buffer.concat(chunks).toString('utf8')) })
    socket.end(request)
  })
  const [head = '', body = ''] = text.split('\r\n\r\n', 2)
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head, body }
}

/**
 * The worker's HTTP surface as browsers and generators meet it (issue 20, items 1, 3, 4):
 * CORS on /ipfs (any origin) and /pins (configured origins), the human API docs at /docs and
 * the OpenAPI document behind them, and every error, the framework's included, in the
 * Pinning Service API's Failure shape.
 */
describe('HTTP surface: CORS, API docs, error shapes (embedded worker)', () => {
  let worker: Worker
  let validate: Awaited<ReturnType<typeof pinningSpecValidator>>
  /** A block this worker does not hold. */
  let cid: CID

  before(async () => {
    validate = await pinningSpecValidator()
    cid = CID.createV1(raw.code, await sha256.digest(new Uint8Array([1, 2, 3])))
    worker = await startWorker(await testConfig({
      PHAROS_ADMIN_TOKENS: ADMIN_TOKEN,
      PHAROS_PIN_TOKENS: `app:${PIN_TOKEN}`,
      PHAROS_PINS_CORS_ORIGINS: `${APP_ORIGIN},http://localhost:5173`
    }), testLogger())
  })

  after(async () => {
    await worker?.stop()
  })

  describe('CORS', () => {
    it('lets any origin read /ipfs: the preflight allows GET and HEAD, without credentials', async () => {
      const cidText = cid.toString()
      const answer = await preflight(`${worker.httpUrl}/ipfs/${cidText}`, OTHER_ORIGIN, 'GET', 'accept, range')
      assert.equal(answer.status, 204)
      assert.equal(answer.headers.get('access-control-allow-origin'), '*')
      assert.deepEqual(answer.headers.get('access-control-allow-methods')?.split(/,\s*/), ['GET', 'HEAD'])
      assert.match(answer.headers.get('access-control-allow-headers') ?? '', /\bAccept\b.*\bRange\b/)
      assert.equal(answer.headers.get('access-control-allow-credentials'), null)
      // The request itself carries the header too (here a 404: the block is not held), so
      // a page can read the answer, and the headers a gateway client needs are exposed.
      const read = await fetch(`${worker.httpUrl}/ipfs/${cidText}`, { headers: { origin: OTHER_ORIGIN, accept: 'application/vnd.ipld.raw' } })
      assert.equal(read.status, 404)
      assert.equal(read.headers.get('access-control-allow-origin'), '*')
      assert.match(read.headers.get('access-control-expose-headers') ?? '', /\bContent-Range\b.*\bETag\b/)
    })

    it('lets a configured origin call /pins with Authorization, and no other origin', async () => {
      const answer = await preflight(`${worker.httpUrl}/pins`, APP_ORIGIN, 'POST', 'authorization, content-type')
      assert.equal(answer.status, 204)
      assert.equal(answer.headers.get('access-control-allow-origin'), APP_ORIGIN)
      assert.match(answer.headers.get('vary') ?? '', /\bOrigin\b/i, 'caches must keep answers per origin')
      assert.match(answer.headers.get('access-control-allow-headers') ?? '', /\bAuthorization\b/)
      assert.deepEqual(answer.headers.get('access-control-allow-methods')?.split(/,\s*/), ['GET', 'POST', 'DELETE'])
      const byId = await preflight(`${worker.httpUrl}/pins/00000000-0000-4000-8000-000000000000`, 'http://localhost:5173', 'DELETE', 'authorization')
      assert.equal(byId.headers.get('access-control-allow-origin'), 'http://localhost:5173')

      // The calls themselves: with a token, and the 401 without one, both readable by the page.
      const listed = await fetch(`${worker.httpUrl}/pins`, { headers: { origin: APP_ORIGIN, authorization: `Bearer ${PIN_TOKEN}` } })
      assert.equal(listed.status, 200)
      assert.equal(listed.headers.get('access-control-allow-origin'), APP_ORIGIN)
      const refused = await fetch(`${worker.httpUrl}/pins`, { headers: { origin: APP_ORIGIN } })
      assert.equal(refused.status, 401)
      assert.equal(refused.headers.get('access-control-allow-origin'), APP_ORIGIN)

      // An origin not configured gets no Access-Control-Allow-Origin: the browser keeps the answer from the page.
      const other = await preflight(`${worker.httpUrl}/pins`, OTHER_ORIGIN, 'POST', 'authorization, content-type')
      assert.equal(other.headers.get('access-control-allow-origin'), null)
      const otherCall = await fetch(`${worker.httpUrl}/pins`, { headers: { origin: OTHER_ORIGIN, authorization: `Bearer ${PIN_TOKEN}` } })
      assert.equal(otherCall.headers.get('access-control-allow-origin'), null)
    })

    it('gives the admin API no CORS at all: its preflight is a 404', async () => {
      const answer = await preflight(`${worker.httpUrl}/v1/node`, APP_ORIGIN, 'GET', 'authorization')
      assert.equal(answer.status, 404)
      assert.equal(answer.headers.get('access-control-allow-origin'), null)
      validate('Failure', await answer.json())
    })
  })

  describe('API docs', () => {
    let document: JsonBody
    before(async () => {
      document = await (await fetch(`${worker.httpUrl}/docs/json`)).json()
    })

    it('serves a docs page at /docs whose every asset comes from this worker', async () => {
      for (const path of ['/docs', '/docs/']) {
        const page = await fetch(`${worker.httpUrl}${path}`)
        assert.equal(page.status, 200)
        assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
        const html = await page.text()
        assert.match(html, /<div id="swagger-ui">/)
        // No CDN: no absolute URL anywhere in the page, and the policy forbids other hosts.
        assert.doesNotMatch(html, /(https?:)?\/\/[a-z0-9.-]+/i)
        assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/)
        const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1] ?? '')
        assert.ok(assets.some((asset) => asset.endsWith('swagger-ui-bundle.js')), assets.join(', '))
        for (const asset of assets) {
          const served = await fetch(new URL(asset, `${worker.httpUrl}${path}`))
          assert.equal(served.status, 200, `${asset} from ${path}`)
          await served.arrayBuffer()
        }
      }
    })

    it('names every operation, the Pinning Service API\'s with the upstream spec\'s operationIds', async () => {
      const upstream = parseYaml(await readFile(new URL('../../../../docs/specs/ipfs-pinning-service.yaml', import.meta.url), 'utf8')) as JsonBody
      const ids: string[] = []
      for (const [path, item] of Object.entries<JsonBody>(document.paths)) {
        for (const [method, operation] of Object.entries<JsonBody>(item)) {
          assert.equal(typeof operation.operationId, 'string', `${method.toUpperCase()} ${path} has an operationId`)
          ids.push(operation.operationId)
          const spec = upstream.paths[path]?.[method]
          if (spec !== undefined) assert.equal(operation.operationId, spec.operationId, `${method.toUpperCase()} ${path}`)
        }
      }
      assert.equal(new Set(ids).size, ids.length, `operationIds are unique: ${ids.join(', ')}`)
      assert.deepEqual(
        ['getPins', 'addPin', 'getPinByRequestId', 'replacePinByRequestId', 'deletePinByRequestId'].filter((id) => !ids.includes(id)), [])
      assert.deepEqual(document.servers, [{ url: '/', description: 'The worker (or load balancer) that served this document' }])
    })

    it('says which operations are public (security: []) and which need a token, and the worker agrees', async () => {
      const publicOperations: string[] = []
      for (const [path, item] of Object.entries<JsonBody>(document.paths)) {
        for (const [method, operation] of Object.entries<JsonBody>(item)) {
          assert.ok(Array.isArray(operation.security), `${operation.operationId as string} declares security`)
          const needsToken = operation.security.length > 0
          if (!needsToken) publicOperations.push(operation.operationId)
          else assert.equal(operation.responses['401']?.content?.['application/json']?.schema?.$ref, '#/components/schemas/Failure', `${operation.operationId as string} lists its 401`)
          // Asked without a token, the worker answers 401 exactly where the document says it would.
          const url = `${worker.httpUrl}${path.replace(/\{[^}]+\}/g, (name) => name === '{cid}' ? cid.toString() : '00000000-0000-4000-8000-000000000000')}`
          const answer = await fetch(url, { method: method.toUpperCase() })
          await answer.arrayBuffer()
          assert.equal(answer.status === 401, needsToken, `${method.toUpperCase()} ${path} without a token: ${answer.status}`)
        }
      }
      assert.deepEqual(publicOperations.sort(), ['getEntryReceipt', 'getHeads', 'getIpfsContent', 'getLiveness', 'getMetrics', 'getReadiness', 'getRegistry', 'headIpfsContent', 'listAudits', 'publishEntry'])
    })
  })

  describe('errors in the Failure shape', () => {
    const expectFailure = async (answer: Response, status: number, reason: string): Promise<JsonBody> => {
      assert.equal(answer.status, status)
      assert.match(answer.headers.get('content-type') ?? '', /^application\/json/)
      const body = await answer.json() as JsonBody
      validate('Failure', body)
      assert.equal(body.error.reason, reason)
      return body
    }

    it('404 for a route that does not exist', async () => {
      const body = await expectFailure(await fetch(`${worker.httpUrl}/no/such/route`), 404, 'NOT_FOUND')
      assert.match(body.error.details, /GET \/no\/such\/route/)
    })

    it('413 for a body over the limit', async () => {
      const answer = await fetch(`${worker.httpUrl}/pins`, {
        method: 'POST',
        headers: { authorization: `Bearer ${PIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ cid: cid.toString(), name: 'x'.repeat(2 * 1024 * 1024) })
      })
      await expectFailure(answer, 413, 'PAYLOAD_TOO_LARGE')
    })

    it('414 for a path segment over Fastify\'s maxParamLength', async () => {
      const body = await expectFailure(await fetch(`${worker.httpUrl}/pins/${'a'.repeat(600)}`, { headers: { authorization: `Bearer ${PIN_TOKEN}` } }), 414, 'URI_TOO_LONG')
      assert.match(body.error.details, /exceeding the max param length/)
    })

    it('a sha2-512 CID (longer than Fastify\'s default 100-character segment) reaches the gateway', async () => {
      const long = CID.createV1(raw.code, await sha512.digest(new TextEncoder().encode('not held here'))).toString()
      assert.ok(long.length > 100, `${long.length} characters`)
      await expectFailure(await fetch(`${worker.httpUrl}/ipfs/${long}`, { headers: { accept: 'application/vnd.ipld.raw' } }), 404, 'NOT_FOUND')
    })

    it('400 for a URL Fastify cannot decode', async () => {
      await expectFailure(await fetch(`${worker.httpUrl}/pins/%E0%A4%A`, { headers: { authorization: `Bearer ${PIN_TOKEN}` } }), 400, 'BAD_REQUEST')
    })

    it('431 for headers over Node\'s limit, though Node\'s parser refuses them before Fastify', async () => {
      const answer = await rawHttp(worker.httpUrl, `GET /pins HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(20 * 1024)}\r\n\r\n`)
      assert.equal(answer.status, 431, answer.headers)
      assert.match(answer.headers, /content-type: application\/json/i)
      const body = JSON.parse(answer.body) as JsonBody
      validate('Failure', body)
      assert.equal(body.error.reason, 'REQUEST_HEADER_FIELDS_TOO_LARGE')
      // A URL so long that the request line alone crosses the limit gets the same answer.
      const longUrl = await rawHttp(worker.httpUrl, `GET /ipfs/${'b'.repeat(20 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`)
      assert.equal(longUrl.status, 431)
      validate('Failure', JSON.parse(longUrl.body))
    })

    it('400 for bytes that are not HTTP', async () => {
      const answer = await rawHttp(worker.httpUrl, 'NOT HTTP AT ALL\r\n\r\n')
      assert.equal(answer.status, 400)
      const body = JSON.parse(answer.body) as JsonBody
      validate('Failure', body)
      assert.equal(body.error.reason, 'BAD_REQUEST')
    })
  })
})
