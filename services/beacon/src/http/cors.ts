import type { FastifyCorsOptions, FastifyCorsOptionsDelegateCallback } from '@fastify/cors'

/**
 * CORS for the trustless gateway: any origin may read it, as any IPFS gateway allows (the
 * content is public and verifiable; no cookies or tokens are involved). Only reads.
 */
const GATEWAY_CORS: FastifyCorsOptions = {
  origin: '*',
  methods: ['GET', 'HEAD'],
  credentials: false,
  // What a browser client of the gateway sends (Helia's trustless-gateway client and
  // verified-fetch send Accept; Range and If-None-Match for partial and cached reads).
  allowedHeaders: ['Accept', 'Cache-Control', 'Content-Type', 'If-None-Match', 'Range', 'User-Agent', 'X-Requested-With'],
  // Headers a browser script may read beyond the safelisted ones.
  exposedHeaders: ['Content-Length', 'Content-Location', 'Content-Range', 'ETag', 'Retry-After', 'X-Ipfs-Path', 'X-Ipfs-Roots'],
  // Browsers cap it lower (Chromium: 2 h); guess: a day, the most any browser honours.
  maxAge: 86_400
}

/** No CORS: no Access-Control-* header, and a preflight is answered 404. */
const NO_CORS: FastifyCorsOptions = { origin: false }

/**
 * CORS for the Pinning Service API: only the configured origins (PHAROS_PINS_CORS_ORIGINS),
 * since a browser app calls it with its user's token. The token travels in Authorization,
 * not a cookie, so no credentials mode is needed; an origin not listed gets no
 * Access-Control-Allow-Origin and the browser keeps the response from the script.
 */
function pinsCors (origins: readonly string[]): FastifyCorsOptions {
  if (origins.length === 0) return NO_CORS
  return {
    origin: [...origins],
    methods: ['GET', 'POST', 'DELETE'],
    credentials: false,
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['Retry-After'],
    // Guess: ten minutes, so a changed origin list reaches browsers soon.
    maxAge: 600
  }
}

/** The area a request's path belongs to, for CORS: `/ipfs/…`, `/pins…`, or neither. */
function areaOf (url: string): 'gateway' | 'pins' | 'other' {
  const path = url.split('?', 1)[0] ?? ''
  if (path === '/ipfs' || path.startsWith('/ipfs/')) return 'gateway'
  if (path === '/pins' || path.startsWith('/pins/')) return 'pins'
  return 'other'
}

/**
 * The `@fastify/cors` delegator: options per request by path, so one registration (one
 * `OPTIONS *` route) serves both areas and every other route has no CORS at all (the admin
 * API is for operators' tools, not browser pages).
 */
export function corsDelegator (pinsOrigins: readonly string[]): FastifyCorsOptionsDelegateCallback {
  const pins = pinsCors(pinsOrigins)
  return (request, callback) => {
    switch (areaOf(request.url)) {
      case 'gateway': callback(null, GATEWAY_CORS); break
      case 'pins': callback(null, pins); break
      case 'other': callback(null, NO_CORS); break
    }
  }
}
