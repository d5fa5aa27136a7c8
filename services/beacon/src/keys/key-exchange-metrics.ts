import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import type { KeyExchangeOutcome } from './key-exchange-service.ts'

/** Key exchange: what became of each request. `outcome` is a closed set. */
export function createKeyExchangeMetrics (registry: Registry) {
  const requests = new Counter({
    name: 'pharos_keyexchange_requests_total',
    help: 'Key-exchange requests by outcome: deposited, deposit-refused, key-sent, denied (entitlement), unknown-key, unregistered (refused before any lookup), malformed.',
    labelNames: ['outcome'],
    registers: [registry]
  })
  return {
    requests: requests as { inc: (labels: { outcome: KeyExchangeOutcome }) => void }
  }
}

export type KeyExchangeMetrics = ReturnType<typeof createKeyExchangeMetrics>
