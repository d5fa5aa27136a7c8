// Lints the worker's generated OpenAPI document with Redocly (`npm run lint:openapi`, part of
// `npm run check`). The document is what GET /docs/json serves: the app is built with every
// route area registered, but with inert dependencies (no database, no libp2p: route schemas
// are all the generator reads), written to a temporary file and handed to `redocly lint`
// with the rules in redocly.yaml. PHAROS_OPENAPI_OUT=<file> also keeps a copy of the document there.
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { loadConfig } from '@pharos/beacon/config/load.ts'
import { buildApp } from '@pharos/beacon/http/app.ts'
import type { AppDeps } from '@pharos/beacon/http/app.ts'

const root = fileURLToPath(new URL('..', import.meta.url))

/** A dependency whose methods are never called while the document is generated: each call throws. */
function inert<T> (name: string): T {
  return new Proxy({}, {
    get: (_target, property) => property === 'then'
      ? undefined
      : () => { throw new Error(`${name}.${String(property)}: not available while writing the OpenAPI document`) }
  }) as T
}

const config = loadConfig({})
const deps: AppDeps = {
  config,
  log: pino({ level: 'silent' }),
  registry: new Registry(),
  limitMetrics: { blocked: () => {} },
  readiness: inert('readiness'),
  pressure: { overload: () => undefined },
  node: inert('node'),
  accounts: inert('accounts'),
  overlay: inert('overlay'),
  adminTokens: [],
  storage: {
    pins: inert('pins'),
    blockstore: inert('blockstore'),
    gc: inert('gc'),
    pinTokens: [],
    ownerQuotaBytes: config.pinOwnerQuotaBytes,
    onPinQueued: () => {}
  },
  logs: inert('logs'),
  bans: inert('bans'),
  fleet: inert('fleet'),
  sync: inert('sync'),
  receipts: inert('receipts'),
  audits: inert('audits')
}

const app = await buildApp(deps)
await app.ready()
const dir = await mkdtemp(join(tmpdir(), 'pharos-openapi-'))
try {
  const file = join(dir, 'openapi.json')
  await writeFile(file, JSON.stringify(app.swagger(), null, 2))
  if (process.env.PHAROS_OPENAPI_OUT !== undefined) await writeFile(process.env.PHAROS_OPENAPI_OUT, await readFile(file))
  const lint = spawnSync(join(root, 'node_modules/.bin/redocly'), ['lint', file, '--config', join(root, 'redocly.yaml')], { stdio: 'inherit', cwd: root })
  process.exitCode = lint.status ?? 1
} finally {
  await app.close()
  await rm(dir, { recursive: true, force: true })
}
