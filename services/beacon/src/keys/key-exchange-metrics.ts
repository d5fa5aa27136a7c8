import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { KeyExchangeOutcome } from './key-exchange-service.ts'

/** Key exchange: what became of each request, and the keys sealed at rest. Labels are closed sets. */
export function createKeyExchangeMetrics (registry: Registry) {
  const requests = new Counter({
    name: 'pharos_keyexchange_requests_total',
    help: 'Key-exchange requests by outcome: deposited, deposit-refused, key-sent, denied (entitlement), unknown-key, unregistered (refused before any lookup), malformed, sealing-key-missing (sealed under a version this worker lacks), sealed-key-corrupt, role-off (no PHAROS_KEY_SEALING_SECRET: refused).',
    labelNames: ['outcome'],
    registers: [registry]
  })
  const resealed = new Counter({
    name: 'pharos_content_keys_resealed_total',
    help: 'Stored content keys sealed under the current sealing key by the pass at start, by what they were: plaintext (from before sealing) or old-version (sealed under an older version of PHAROS_KEY_SEALING_SECRET).',
    labelNames: ['from'],
    registers: [registry]
  })
  const unopenable = new Gauge({
    name: 'pharos_content_keys_unopenable',
    help: 'Stored content keys sealed under a version PHAROS_KEY_SEALING_SECRET does not hold, as the last re-sealing pass found them: GETKEY for them answers unavailable until that version is added back.',
    registers: [registry]
  })
  return {
    requests: requests as { inc: (labels: { outcome: KeyExchangeOutcome }) => void },
    resealed: resealed as { inc: (labels: { from: 'plaintext' | 'old-version' }, value: number) => void },
    unopenable
  }
}

export type KeyExchangeMetrics = ReturnType<typeof createKeyExchangeMetrics>
