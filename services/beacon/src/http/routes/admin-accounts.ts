import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { canonicalAccountId, InvalidAccountIdError } from '../../accounts/account-registry.ts'
import { ExternalAccountSourceError } from '../../accounts/accounts.ts'
import type { Accounts } from '../../accounts/accounts.ts'
import { FailureRef, HttpError } from '../errors.ts'

const AccountSchema = Type.Object({
  peerId: Type.String(),
  label: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' })
})

const PeerIdBody = Type.Object({ peerId: Type.String({ minLength: 1, maxLength: 128, description: 'An ed25519 peer ID: 12D3KooW…, or its CID form (k51…, bafz…); stored and shown as 12D3KooW…' }) }, { additionalProperties: false })

/**
 * An account ID as the registry keeps it (the base58btc peer ID, whatever encoding it came
 * in); one that cannot be an account is a 400 saying why.
 */
function canonical (peerId: string): string {
  try {
    return canonicalAccountId(peerId)
  } catch (err) {
    if (err instanceof InvalidAccountIdError) throw new HttpError('badRequest', err.message)
    throw err
  }
}

/** The account registry: who may join the overlay. N (the overlay size estimate) is the count. */
/** What the account routes use of the registry. */
export type AccountAdmin = Pick<Accounts, 'add' | 'count' | 'get' | 'list' | 'remove'>

/** A write to accounts kept outside the worker (a file or URL source) is a 409 saying where to change them. */
async function writing<T> (work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof ExternalAccountSourceError) throw new HttpError('conflict', err.message)
    throw err
  }
}

export const adminAccountRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountAdmin }> = async (app, { accounts }) => {
  app.get('/v1/accounts', {
    schema: {
      tags: ['admin'],
      summary: 'Registered accounts, in peer ID order, paged with `after`',
      security: [{ bearer: [] }],
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
        after: Type.Optional(Type.String({ maxLength: 128 }))
      }),
      response: { 200: Type.Object({ count: Type.Integer(), accounts: Type.Array(AccountSchema) }) }
    }
  }, async (request) => ({ count: accounts.count, accounts: await accounts.list(request.query.limit, request.query.after) }))

  app.post('/v1/accounts', {
    schema: {
      tags: ['admin'],
      summary: 'Register an account (an ed25519 peer ID in any encoding, kept as 12D3KooW…); 201 when new, 200 when it already was; 409 when accounts come from a file or URL (PHAROS_ACCOUNTS_SOURCE)',
      security: [{ bearer: [] }],
      body: Type.Object({
        peerId: PeerIdBody.properties.peerId,
        label: Type.Optional(Type.String({ maxLength: 200 }))
      }, { additionalProperties: false }),
      response: { 201: AccountSchema, 200: AccountSchema, 400: FailureRef, 409: FailureRef }
    }
  }, async (request, reply) => {
    const peerId = canonical(request.body.peerId)
    const created = await writing(async () => await accounts.add(peerId, request.body.label))
    const account = await accounts.get(peerId)
    if (account === undefined) throw new HttpError('conflict', `${peerId} was removed while being added`)
    return await reply.code(created ? 201 : 200).send(account)
  })

  const remove = async (given: string): Promise<void> => {
    const peerId = canonical(given)
    if (!await writing(async () => await accounts.remove(peerId))) throw new HttpError('notFound', `no account ${peerId}`)
  }

  app.delete('/v1/accounts/:peerId', {
    schema: {
      tags: ['admin'],
      summary: 'Remove an account (given in any encoding); its peers can no longer join',
      security: [{ bearer: [] }],
      params: PeerIdBody,
      response: { 204: Type.Null(), 400: FailureRef, 404: FailureRef, 409: FailureRef }
    }
  }, async (request, reply) => {
    await remove(request.params.peerId)
    return await reply.code(204).send(null)
  })

  app.delete('/v1/accounts', {
    schema: {
      tags: ['admin'],
      summary: 'Remove an account given as { peerId } in the body',
      security: [{ bearer: [] }],
      body: PeerIdBody,
      response: { 204: Type.Null(), 400: FailureRef, 404: FailureRef, 409: FailureRef }
    }
  }, async (request, reply) => {
    await remove(request.body.peerId)
    return await reply.code(204).send(null)
  })
}
