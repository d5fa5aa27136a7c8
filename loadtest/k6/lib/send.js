// Sends one request built by lib/pharos.js, tagged with its route name (the thresholds are
// per route) and checked against the statuses the route may answer. Kept apart from
// lib/pharos.js, which imports nothing from k6 so that Node can load it in npm test.
import http from 'k6/http'
import { check } from 'k6'

export function send (req) {
  const response = http.request(req.method, req.url, req.body, {
    headers: req.headers,
    tags: { name: req.name },
    responseCallback: http.expectedStatuses(...req.expect)
  })
  check(response, { [`${req.name} answers ${req.expect.join('/')}`]: (r) => req.expect.includes(r.status) })
  return response
}
