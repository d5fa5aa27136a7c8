// k6 load test of the IPFS Pinning Service API of one Pharos worker (or a fleet behind a
// load balancer): each iteration adds a pin, polls its status until it is pinned, lists the
// run's pins and removes the pin again (KEEP_PINS=1 keeps it). Pins are of identity CIDs,
// whose block is inside the CID: the worker fetches nothing, so this measures the API, its
// Postgres queries and the pin queue, not a content provider.
//
//   k6 run -e PHAROS_URL=http://127.0.0.1:8080 -e PHAROS_PIN_TOKEN=<token> -e VUS=10 -e DURATION=1m loadtest/k6/pinning-api.js
//
// Thresholds and variables: loadtest/README.md.
import { check, fail, sleep } from 'k6'
import { Trend } from 'k6/metrics'
import { addPin, identityCid, listPins, pinStatus, removePin, settings } from './lib/pharos.js'
import { send } from './lib/send.js'

const run = settings(__ENV)
if (run.token === '') fail('PHAROS_PIN_TOKEN is required: a token from the worker\'s PHAROS_PIN_TOKENS (owner:token), see loadtest/README.md')

/** POST /pins → `pinned`, seconds, per pin. */
const pinnedAfter = new Trend('pharos_pin_pinned_seconds', false)

export const options = {
  scenarios: {
    pinning: { executor: 'constant-vus', vus: run.vus, duration: run.duration, gracefulStop: '30s' }
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{name:pinsAdd}': ['p(95)<250', 'p(99)<1000'],
    'http_req_duration{name:pinsStatus}': ['p(95)<100', 'p(99)<500'],
    'http_req_duration{name:pinsList}': ['p(95)<250', 'p(99)<1000'],
    'http_req_duration{name:pinsRemove}': ['p(95)<250', 'p(99)<1000'],
    pharos_pin_pinned_seconds: ['p(95)<2', 'max<10']
  }
}

/** One id per run, so the run's pins can be listed apart from everything else the owner holds. */
export function setup () {
  return { runId: `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}` }
}

export default function ({ runId }) {
  const added = send(addPin(run, identityCid(`pharos k6 ${runId} ${__VU} ${__ITER}`), runId))
  if (added.status !== 202) return
  const requestid = added.json('requestid')
  const started = Date.now()
  let status = added.json('status')
  // The pin queue starts a pin added through this worker at once; an identity pin is then
  // one transaction. 10 s without `pinned` counts as a failed check.
  while (status !== 'pinned' && status !== 'failed' && Date.now() - started < 10_000) {
    sleep(0.1)
    const polled = send(pinStatus(run, requestid))
    if (polled.status !== 200) return
    status = polled.json('status')
  }
  check(status, { 'pin reaches pinned': (s) => s === 'pinned' })
  if (status === 'pinned') pinnedAfter.add((Date.now() - started) / 1000)
  const listed = send(listPins(run, runId))
  check(listed, { 'the run\'s pins are listed': (r) => r.status === 200 && r.json('count') >= 1 })
  if (!run.keepPins) send(removePin(run, requestid))
}
