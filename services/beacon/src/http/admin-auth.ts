import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendFailure } from './errors.ts'

const digest = (token: string): Buffer => createHash('sha256').update(token).digest()

/**
 * Bearer-token check for admin routes. Tokens are compared as SHA-256 digests in constant
 * time, so neither a token's content nor its length leaks through timing.
 */
export function bearerAuth (tokens: readonly string[]) {
  return bearerOwnerAuth(tokens.map((token) => ({ token, owner: '' })), () => {})
}

/**
 * The same check for tokens that each belong to an owner (the Pinning Service API's
 * tokens): `onOwner` is told whose token the request carried.
 */
export function bearerOwnerAuth (entries: ReadonlyArray<{ token: string, owner: string }>, onOwner: (request: FastifyRequest, owner: string) => void) {
  const accepted = entries.map((entry) => ({ digest: digest(entry.token), owner: entry.owner }))
  return async function requireBearer (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (match?.[1] === undefined) {
      await sendFailure(reply, 'unauthorized', 'send Authorization: Bearer <token>')
      return reply
    }
    const offered = digest(match[1])
    let owner: string | undefined
    // Every token is compared, so the time taken does not say which one matched.
    for (const entry of accepted) if (timingSafeEqual(entry.digest, offered)) owner ??= entry.owner
    if (owner === undefined) {
      await sendFailure(reply, 'unauthorized', 'the bearer token is not valid')
      return reply
    }
    onOwner(request, owner)
  }
}
