import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { schema } from '@pharos/beacon/config/schema.ts'
import { startWorker } from '@pharos/beacon/worker.ts'
import type { Worker } from '@pharos/beacon/worker.ts'
import { randomContent, testConfig, testLogger } from '../../services/beacon/test/helpers/storage.ts'
import { waitForValue } from '@pharos/testing/wait.ts'

const K6_DIR = fileURLToPath(new URL('../k6/', import.meta.url))
const README = fileURLToPath(new URL('../README.md', import.meta.url))
const TOKEN = 'k6-test-token-0123456789abcdef'

interface Route { method: string, path: string, auth: 'bearer' | 'none', expect: number[] }
interface Request { name: string, method: string, url: string, body: string | null, headers: Record<string, string>, expect: number[] }
interface Run { baseUrl: string, token: string, vus: number, duration: string, keepPins: boolean, gatewayCids: string[], gatewayMissCid: string }
type PinListing = { count: number, results: Array<{ requestid: string, status: string, pin: { cid: string }, info?: Record<string, string> }> }

/** loadtest/k6/lib/pharos.js, typed by hand: it is plain JavaScript for k6. */
interface K6Lib {
  DEFAULT_BASE_URL: string
  ROUTES: Record<string, Route>
  ENV_DEFAULTS: Record<string, string>
  settings: (env: Record<string, string>) => Run
  identityCid: (text: string) => string
  heldCids: (listing: PinListing) => string[]
  addPin: (run: Run, cid: string, runId: string) => Request
  listPins: (run: Run, runId: string) => Request
  listPinned: (run: Run) => Request
  pinStatus: (run: Run, requestid: string) => Request
  removePin: (run: Run, requestid: string) => Request
  gatewayRaw: (run: Run, cid: string) => Request
  gatewayHead: (run: Run, cid: string) => Request
  gatewayCar: (run: Run, cid: string) => Request
  gatewayMiss: (run: Run) => Request
}

async function scripts (dir = K6_DIR): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...await scripts(path))
    else if (entry.name.endsWith('.js')) files.push(path)
  }
  return files.sort()
}

/** `node --check` of `source` as an ES module (k6 scripts are ES modules; .js alone would not say so). */
async function checkSyntax (source: string): Promise<{ code: number | null, stderr: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '--check'], { stdio: ['pipe', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin.end(source)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stderr }
}

async function send (request: Request): Promise<{ status: number, text: string }> {
  const response = await fetch(request.url, { method: request.method, headers: request.headers, ...(request.body === null ? {} : { body: request.body }) })
  return { status: response.status, text: await response.text() }
}

/** Sends `request` and asserts the status the k6 script's check expects. */
async function sendExpecting (request: Request): Promise<string> {
  const { status, text } = await send(request)
  assert.ok(request.expect.includes(status), `${request.name}: ${request.method} ${request.url} answered ${status}, the k6 script expects ${request.expect.join('/')}: ${text}`)
  return text
}

describe('loadtest/k6 scripts', () => {
  let lib: K6Lib
  let files: string[]

  before(async () => {
    // A variable specifier: TypeScript does not look for declarations of plain JavaScript.
    const libUrl = pathToFileURL(join(K6_DIR, 'lib', 'pharos.js')).href
    lib = await import(libUrl) as K6Lib
    files = await scripts()
  })

  it('every k6 script is valid ES module syntax (node --check)', async () => {
    assert.ok(files.some((file) => file.endsWith('pinning-api.js')) && files.some((file) => file.endsWith('gateway.js')), files.join(', '))
    for (const file of files) {
      const { code, stderr } = await checkSyntax(await readFile(file, 'utf8'))
      assert.equal(code, 0, `${file}: ${stderr}`)
    }
    const broken = await checkSyntax('export default function () { const a = ; }')
    assert.notEqual(broken.code, 0, 'the syntax check must reject broken code')
  })

  it('scripts import only what lib/pharos.js exports, and spell no route, auth header or port of their own', async () => {
    const exported = new Set(Object.keys(lib))
    for (const file of files.filter((path) => !path.includes(`${join('k6', 'lib')}`))) {
      const source = await readFile(file, 'utf8')
      const imports = [...source.matchAll(/import\s*\{([^}]*)\}\s*from\s*'\.\/lib\/pharos\.js'/g)]
      assert.equal(imports.length, 1, `${file} imports lib/pharos.js once`)
      for (const name of (imports[0]?.[1] ?? '').split(',').map((part) => part.trim()).filter((part) => part.length > 0)) {
        assert.ok(exported.has(name), `${file} imports ${name}, which lib/pharos.js does not export`)
      }
      // Routes, the bearer scheme and the base URL come from the lib, where the test below checks them.
      const code = source.split('\n').filter((line) => !line.trimStart().startsWith('//')).join('\n')
      for (const forbidden of [/['"`]\/(pins|ipfs|v1|metrics|health)/, /Bearer/, /:\d{2,5}\b/, /https?:\/\//]) {
        assert.doesNotMatch(code, forbidden, `${file} spells ${String(forbidden)} itself; take it from lib/pharos.js`)
      }
    }
  })

  it('settings read the environment and reject bad values naming the variable', () => {
    const run = lib.settings({ PHAROS_URL: 'http://10.0.0.1:9000/', PHAROS_PIN_TOKEN: 't', VUS: '5', DURATION: '2m30s', GATEWAY_CIDS: 'a, b' })
    assert.deepEqual({ ...run }, { baseUrl: 'http://10.0.0.1:9000', token: 't', vus: 5, duration: '2m30s', keepPins: false, gatewayCids: ['a', 'b'], gatewayMissCid: lib.ENV_DEFAULTS.GATEWAY_MISS_CID })
    assert.equal(lib.settings({}).baseUrl, lib.DEFAULT_BASE_URL)
    for (const [key, value] of [['VUS', '0'], ['VUS', 'ten'], ['DURATION', '5 minutes'], ['PHAROS_URL', 'http://host/path'], ['KEEP_PINS', 'yes']] as const) {
      assert.throws(() => lib.settings({ [key]: value }), new RegExp(`^Error: ${key} `), `${key}=${value}`)
    }
  })

  it('the default base URL is the worker\'s default HTTP host and port', () => {
    assert.equal(lib.DEFAULT_BASE_URL, `http://${schema.httpHost.default}:${schema.httpPort.default}`)
  })

  it('loadtest/README.md documents every variable the scripts read', async () => {
    const readme = await readFile(README, 'utf8')
    for (const key of Object.keys(lib.ENV_DEFAULTS)) assert.match(readme, new RegExp(`\`${key}\``), `README lacks ${key}`)
  })

  it('identity CIDs are the CIDs multiformats builds', async () => {
    for (const text of ['a', 'pharos k6 lq2k-9x 3 17', 'x'.repeat(100)]) {
      const expected = CID.createV1(raw.code, identity.digest(new TextEncoder().encode(text))).toString()
      assert.equal(lib.identityCid(text), expected)
    }
  })

  describe('against a real worker', () => {
    let worker: Worker
    let run: Run
    let openapi: { paths: Record<string, Record<string, { security?: Array<Record<string, unknown>> }>> }

    before(async () => {
      worker = await startWorker(await testConfig({ PHAROS_PIN_TOKENS: `loadtest:${TOKEN}` }), testLogger())
      run = lib.settings({ PHAROS_URL: worker.httpUrl, PHAROS_PIN_TOKEN: TOKEN })
      openapi = await (await fetch(`${worker.httpUrl}/docs/json`)).json() as typeof openapi
    })

    after(async () => {
      await worker?.stop()
    })

    it('every route the scripts call exists with its method and auth scheme in the worker\'s OpenAPI document', async () => {
      assert.ok(Object.keys(lib.ROUTES).length >= 8)
      for (const [name, route] of Object.entries(lib.ROUTES)) {
        // HEAD shares the GET route's schema; Fastify registers it on the same path.
        const operation = openapi.paths[route.path]?.[route.method === 'HEAD' ? 'get' : route.method.toLowerCase()]
        assert.ok(operation !== undefined, `${name}: ${route.method} ${route.path} is not a route of the worker (paths: ${Object.keys(openapi.paths).join(', ')})`)
        const bearer = (operation.security ?? []).some((requirement) => 'bearer' in requirement)
        assert.equal(bearer, route.auth === 'bearer', `${name}: the worker ${bearer ? 'requires' : 'does not require'} a bearer token on ${route.method} ${route.path}`)
        if (route.auth === 'bearer') {
          const url = `${worker.httpUrl}${route.path.replace('{requestid}', '00000000-0000-0000-0000-000000000000')}`
          const { status } = await send({ name, method: route.method, url, body: null, headers: {}, expect: [] })
          assert.equal(status, 401, `${name} without a token`)
        }
      }
    })

    it('the pinning script\'s requests: add, status until pinned, list, remove', async () => {
      const runId = 'test-run'
      const added = JSON.parse(await sendExpecting(lib.addPin(run, lib.identityCid(`pharos k6 ${runId} 1 0`), runId))) as { requestid: string }
      const pinned = await waitForValue('the identity pin settles', 10_000, async () => {
        const status = JSON.parse(await sendExpecting(lib.pinStatus(run, added.requestid))) as { status: string }
        return status.status === 'pinned' || status.status === 'failed' ? status.status : undefined
      })
      assert.equal(pinned, 'pinned')
      const listing = JSON.parse(await sendExpecting(lib.listPins(run, runId))) as PinListing
      assert.deepEqual(listing.results.map((pin) => pin.requestid), [added.requestid])
      // Another run's meta does not match.
      assert.equal((JSON.parse(await sendExpecting(lib.listPins(run, 'other-run'))) as PinListing).count, 0)
      await sendExpecting(lib.removePin(run, added.requestid))
      assert.equal((await send(lib.pinStatus(run, added.requestid))).status, 404)
    })

    it('the gateway script\'s requests: held CIDs from the pin listing, raw, HEAD, CAR and a miss', async () => {
      const bytes = randomContent(2048)
      const cid = CID.createV1(raw.code, await sha256.digest(bytes))
      await worker.storage.blockstore.put(cid, bytes)
      const added = JSON.parse(await sendExpecting(lib.addPin(run, cid.toString(), 'gateway'))) as { requestid: string }
      await waitForValue('the block pin is pinned', 10_000, async () => (JSON.parse((await send(lib.pinStatus(run, added.requestid))).text) as { status: string }).status === 'pinned' ? true : undefined)

      const held = lib.heldCids(JSON.parse(await sendExpecting(lib.listPinned(run))) as PinListing)
      assert.deepEqual(held, [cid.toString()], 'identity pins hold no block and are left out')
      const rawBody = await fetch(lib.gatewayRaw(run, cid.toString()).url, { headers: lib.gatewayRaw(run, cid.toString()).headers })
      assert.equal(rawBody.status, 200)
      assert.deepEqual(new Uint8Array(await rawBody.arrayBuffer()), bytes)
      await sendExpecting(lib.gatewayHead(run, cid.toString()))
      const car = await fetch(lib.gatewayCar(run, cid.toString()).url, { headers: lib.gatewayCar(run, cid.toString()).headers })
      assert.equal(car.status, 200)
      assert.match(car.headers.get('content-type') ?? '', /^application\/vnd\.ipld\.car/)
      await sendExpecting(lib.gatewayMiss(run))
    })
  })
})
