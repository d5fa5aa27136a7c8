/**
 * The package graph is enforced by lint, not by review (eslint.config.js): each case lints
 * one import as if it were written in a file of a package, and the rule must refuse the
 * imports that break the graph and let the ones that follow it through.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const eslint = new ESLint({ cwd: root })

/** The messages of no-restricted-imports for `source` written in the existing file `file`. */
async function restrictedImports (file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${source}\nexport {}\n`, { filePath: `${root}${file}` })
  assert.ok(result !== undefined)
  const fatal = result.messages.filter((message) => message.fatal === true)
  assert.deepEqual(fatal, [], `${file} could not be linted`)
  return result.messages.filter((message) => message.ruleId === 'no-restricted-imports').map((message) => message.message)
}

describe('the package graph (lint)', () => {
  const refused: Array<[string, string, string]> = [
    ['peer → beacon', 'services/peer/src/keys.ts', "import '@pharos/beacon/worker.ts'"],
    ['peer tests → beacon', 'services/peer/test/keys.test.ts', "import '@pharos/beacon/worker.ts'"],
    ['net → beacon', 'services/net/src/overlay/topics.ts', "import '@pharos/beacon/worker.ts'"],
    ['net → peer', 'services/net/src/overlay/topics.ts', "import '@pharos/peer'"],
    ['net → a database client', 'services/net/src/overlay/topics.ts', "import 'pg'"],
    ['net → the HTTP server', 'services/net/src/overlay/topics.ts', "import 'fastify'"],
    ['protocol → I/O', 'services/protocol/src/bounded-map.ts', "import 'node:fs'"],
    ['protocol → libp2p', 'services/protocol/src/bounded-map.ts', "import '@libp2p/tcp'"],
    ['protocol → net', 'services/protocol/src/bounded-map.ts', "import '@pharos/net/overlay/topics.ts'"],
    ['beacon → peer', 'services/beacon/src/health.ts', "import '@pharos/peer/keys.ts'"],
    ['beacon → test helpers', 'services/beacon/src/health.ts', "import '@pharos/testing/wait.ts'"],
    ['testing → beacon', 'services/testing/src/wait.ts', "import '@pharos/beacon/worker.ts'"],
    ['metrics → domain', 'services/beacon/src/metrics/registry.ts', "import '../logs/log-store.ts'"],
    ['a path into another package', 'services/beacon/src/health.ts', "import '../../net/src/overlay/topics.ts'"],
    ['a benchmark reaching into a package\'s sources by path', 'bench/run.ts', "import '../services/beacon/src/worker.ts'"],
    ['a test reaching into another package by path', 'services/beacon/test/unit/tick-batcher.test.ts', "import '../../../../testing/src/wait.ts'"]
  ]
  for (const [edge, file, source] of refused) {
    it(`refuses ${edge}`, async () => {
      assert.notDeepEqual(await restrictedImports(file, source), [], `${source} in ${file} was let through`)
    })
  }

  const allowed: Array<[string, string, string]> = [
    ['peer → net', 'services/peer/src/keys.ts', "import '@pharos/net/overlay/topics.ts'"],
    ['peer → protocol', 'services/peer/src/keys.ts', "import '@pharos/protocol/bounded-map.ts'"],
    ['net → protocol', 'services/net/src/overlay/topics.ts', "import '@pharos/protocol/bounded-map.ts'"],
    ['net → libp2p', 'services/net/src/overlay/topics.ts', "import '@libp2p/utils'"],
    ['beacon → net', 'services/beacon/src/health.ts', "import '@pharos/net/overlay/topics.ts'"],
    ['beacon → its own net/ folder', 'services/beacon/src/p2p/identity.ts', "import '../net/source-address.ts'"],
    ['peer tests → testing', 'services/peer/test/helpers/peers.ts', "import '@pharos/testing/wait.ts'"],
    ['beacon tests → the peer SDK as a client', 'services/beacon/test/unit/tick-batcher.test.ts', "import '@pharos/peer/keys.ts'"],
    ['metrics → config', 'services/beacon/src/metrics/registry.ts', "import '../config/schema.ts'"],
    ['a domain → its metrics', 'services/beacon/src/logs/log-store.ts', "import './log-metrics.ts'"]
  ]
  for (const [edge, file, source] of allowed) {
    it(`allows ${edge}`, async () => {
      assert.deepEqual(await restrictedImports(file, source), [])
    })
  }
})
