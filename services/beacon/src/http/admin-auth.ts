import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendFailure } from './errors.ts'

const digest = (token: string): Buffer => createHash('sha256').update(token).digest()

/**
 * Bearer-token check for admin routes. Tokens are compared as SHA-256 digests in constant
 * time, so neither a token's content nor its length leaks through timing.
 */
export function bearerAuth (tokens: readonly string[]) {
  const accepted = tokens.map(digest)
  return async function requireBearer (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (match?.[1] === undefined) {
      await sendFailure(reply, 'unauthorized', 'send Authorization: Bearer <token>')
      return reply
    }
    const offered = digest(match[1])
    let valid = false
    for (const token of accepted) valid = timingSafeEqual(token, offered) || valid
    if (!valid) {
      await sendFailure(reply, 'unauthorized', 'the bearer token is not valid')
      return reply
    }
  }
}
