// k6 load test of the trustless HTTP gateway of one Pharos worker (or a fleet behind a load
// balancer): each iteration asks for one held CID as a raw block, as HEAD, and as a CAR of
// its whole DAG, and for one CID the service does not hold (404). The gateway reads
// Postgres only and never fetches from the network, so this measures the blockstore path.
//
//   k6 run -e PHAROS_URL=http://127.0.0.1:8080 -e GATEWAY_CIDS=<cid>,<cid> -e VUS=20 -e DURATION=1m loadtest/k6/gateway.js
//
// Without GATEWAY_CIDS, setup() asks the Pinning Service API (PHAROS_PIN_TOKEN) for the
// owner's pinned pins that hold blocks. Thresholds and variables: loadtest/README.md.
import http from 'k6/http'
import { check, fail } from 'k6'
import { gatewayCar, gatewayHead, gatewayMiss, gatewayRaw, heldCids, listPinned, settings } from './lib/pharos.js'
import { send } from './lib/send.js'

const run = settings(__ENV)

export const options = {
  scenarios: {
    gateway: { executor: 'constant-vus', vus: run.vus, duration: run.duration, gracefulStop: '30s' }
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{name:gatewayRaw}': ['p(95)<100', 'p(99)<500'],
    'http_req_duration{name:gatewayHead}': ['p(95)<100', 'p(99)<500'],
    'http_req_duration{name:gatewayCar}': ['p(95)<1000', 'p(99)<3000'],
    'http_req_duration{name:gatewayMiss}': ['p(95)<100', 'p(99)<500']
  }
}

export function setup () {
  if (run.gatewayCids.length > 0) return { cids: run.gatewayCids }
  if (run.token === '') fail('set GATEWAY_CIDS (CIDs the service holds) or PHAROS_PIN_TOKEN (to list pinned pins), see loadtest/README.md')
  const req = listPinned(run)
  const listed = http.request(req.method, req.url, req.body, { headers: req.headers, tags: { name: 'setup' } })
  if (listed.status !== 200) fail(`listing pinned pins answered ${listed.status}: ${listed.body}`)
  const cids = heldCids(listed.json())
  if (cids.length === 0) fail('the token\'s owner has no pinned pin that holds blocks; pin some content or set GATEWAY_CIDS')
  return { cids }
}

export default function ({ cids }) {
  const cid = cids[(__VU + __ITER) % cids.length]
  const raw = send(gatewayRaw(run, cid))
  check(raw, { 'raw block has a body': (r) => r.status !== 200 || (r.body !== null && r.body.length > 0) })
  send(gatewayHead(run, cid))
  send(gatewayCar(run, cid))
  send(gatewayMiss(run))
}
