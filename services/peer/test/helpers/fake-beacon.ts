import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { overlay } from '@pharos/net/overlay/overlay-driver.ts'
import type { AdmitDecision, OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { auditValidator, contentValidator, keyExchangeValidator, syncValidator } from '@pharos/net/overlay/gossip-validators.ts'
import { OVERLAY_TOPICS } from '@pharos/net/overlay/topics.ts'
import {
  decodeKeyExchange,
  decodeSyncRequest,
  encodeKeyExchange,
  encodeSyncResponse,
  keyExchangeProtocolId,
  MAX_SYNC_FRAME_BYTES,
  syncProtocolId
} from '@pharos/protocol/log/index.ts'
import type { KeyExchangeMessage, SyncRequest, SyncResponse } from '@pharos/protocol/log/index.ts'

/** What a scripted handler answers: a frame, raw bytes (malformed on purpose), or silence. */
export type Scripted<T> = T | { raw: Uint8Array } | 'hang'

export interface FakeBeaconScript {
  sync?: (request: SyncRequest, from: PeerId) => Scripted<SyncResponse> | Promise<Scripted<SyncResponse>>
  keyExchange?: (request: KeyExchangeMessage, from: PeerId) => Scripted<KeyExchangeMessage> | Promise<Scripted<KeyExchangeMessage>>
  admit?: (peer: PeerId) => AdmitDecision
}

export type FakeBeacon = Libp2p<{ identify: unknown, overlay: OverlayDriver }> & { address: string, requests: SyncRequest[] }

/**
 * A stand-in for a beacon worker, for what the SDK relies on before the real one exists: the
 * overlay driver (so peers can join) and scripted sync / key-exchange answers.
 */
export async function startFakeBeacon (script: FakeBeaconScript, network = 'pharos', privateKey?: PrivateKey, tcpPort = 0): Promise<FakeBeacon> {
  const node = await createLibp2p({
    ...(privateKey === undefined ? {} : { privateKey }),
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${tcpPort}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      overlay: overlay({
        network,
        topics: OVERLAY_TOPICS,
        networkSize: 10,
        // What a beacon forwards, without its storage: the checks the SDK makes too.
        validators: { content: contentValidator(undefined), keyexchange: keyExchangeValidator(undefined), audit: auditValidator, sync: syncValidator(undefined) },
        ...(script.admit === undefined ? {} : { admit: script.admit })
      })
    }
  })
  const requests: SyncRequest[] = []
  const serve = <Req, Res>(decode: (bytes: Uint8Array) => { ok: true, value: Req } | { ok: false }, encode: (response: Res) => Uint8Array, answer?: (request: Req, from: PeerId) => Scripted<Res> | Promise<Scripted<Res>>) =>
    async (stream: Parameters<Parameters<typeof node.handle>[1]>[0], from: PeerId): Promise<void> => {
      try {
        const lp = lpStream(stream, { maxDataLength: MAX_SYNC_FRAME_BYTES, maxBufferSize: MAX_SYNC_FRAME_BYTES + 16 })
        const decoded = decode((await lp.read()).subarray())
        if (!decoded.ok || answer === undefined) { stream.abort(new Error('unexpected request')); return }
        if (decoded.value !== null && typeof decoded.value === 'object' && 't' in decoded.value && ['heads', 'entries', 'status', 'changes'].includes(String(decoded.value.t))) requests.push(decoded.value as unknown as SyncRequest)
        const response = await answer(decoded.value, from)
        if (response === 'hang') return
        await lp.write(typeof response === 'object' && response !== null && 'raw' in response ? response.raw : encode(response as Res))
        await stream.close()
      } catch (err) {
        stream.abort(err as Error)
      }
    }
  await node.handle(syncProtocolId(network), (stream, connection) => { void serve(decodeSyncRequest, encodeSyncResponse, script.sync)(stream, connection.remotePeer) })
  await node.handle(keyExchangeProtocolId(network), (stream, connection) => { void serve(decodeKeyExchange, encodeKeyExchange, script.keyExchange)(stream, connection.remotePeer) })
  const address = node.getMultiaddrs()[0]?.toString()
  if (address === undefined) throw new Error('fake beacon has no address')
  return Object.assign(node, { address, requests })
}
