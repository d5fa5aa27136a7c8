import { registerHooks } from 'node:module'
import { afterEach, beforeEach, describe, it } from 'node:test'
import type * as BlockstoreTests from 'interface-blockstore-tests'

const AEGIR_CHAI = new URL('./aegir-chai.js', import.meta.url).href

/**
 * The js-stores compliance suites are written for mocha: they call the global `describe`,
 * `it`, `beforeEach` and `afterEach`, and import `expect` from `aegir/chai`. This gives them
 * node:test's functions and resolves `aegir/chai` to a local shim, so the published suite
 * runs unmodified under `node --test`.
 */
export async function loadBlockstoreComplianceSuite (): Promise<typeof BlockstoreTests> {
  registerHooks({
    resolve (specifier, context, nextResolve) {
      if (specifier === 'aegir/chai') return { url: AEGIR_CHAI, shortCircuit: true }
      return nextResolve(specifier, context)
    }
  })
  Object.assign(globalThis, { describe, it, beforeEach, afterEach })
  return await import('interface-blockstore-tests')
}
