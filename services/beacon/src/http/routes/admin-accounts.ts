import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { InvalidAccountIdError } from '../../accounts/account-registry.ts'
import type { AccountRegistry } from '../../accounts/account-registry.ts'
import { HttpError } from '../errors.ts'

const AccountSchema = Type.Object({
  peerId: Type.String(),
  label: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' })
})

const PeerIdBody = Type.Object({ peerId: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false })

/** The account registry: who may join the overlay. N (the overlay size estimate) is the count. */
export const adminAccountRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountRegistry }> = async (app, { accounts }) => {
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
      summary: 'Register an account (an ed25519 peer ID); 201 when new, 200 when it already was',
      security: [{ bearer: [] }],
      body: Type.Object({
        peerId: Type.String({ minLength: 1, maxLength: 128 }),
        label: Type.Optional(Type.String({ maxLength: 200 }))
      }, { additionalProperties: false }),
      response: { 201: AccountSchema, 200: AccountSchema }
    }
  }, async (request, reply) => {
    let created: boolean
    try {
      created = await accounts.add(request.body.peerId, request.body.label)
    } catch (err) {
      if (err instanceof InvalidAccountIdError) throw new HttpError('badRequest', err.message)
      throw err
    }
    const account = await accounts.get(request.body.peerId)
    if (account === undefined) throw new HttpError('conflict', `${request.body.peerId} was removed while being added`)
    return await reply.code(created ? 201 : 200).send(account)
  })

  const remove = async (peerId: string): Promise<void> => {
    if (!await accounts.remove(peerId)) throw new HttpError('notFound', `no account ${peerId}`)
  }

  app.delete('/v1/accounts/:peerId', {
    schema: {
      tags: ['admin'],
      summary: 'Remove an account; its peers can no longer join',
      security: [{ bearer: [] }],
      params: PeerIdBody,
      response: { 204: Type.Null() }
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
      response: { 204: Type.Null() }
    }
  }, async (request, reply) => {
    await remove(request.body.peerId)
    return await reply.code(204).send(null)
  })
}
