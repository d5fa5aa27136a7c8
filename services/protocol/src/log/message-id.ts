/**
 * The message ID a gossip payload must carry on each overlay topic: its content hash, so an
 * ID names exactly one payload (issue 17). Plumtree remembers IDs, answers GRAFTs by ID and
 * drops duplicates by ID; with IDs not bound to content, one valid entry could be re-sent under
 * any number of IDs, each cached and forwarded anew, and a squatter could take an entry's ID
 * with junk. Receivers compute this before the Plumtree state sees a payload.
 *
 * - `content`: the CID (CIDv1, dag-cbor, sha2-256) of the entry inside the publish envelope,
 *   which is also what the entry is stored and pinned under (the envelope's signature is
 *   checked later, by ingest: this only reads its `entry` field);
 * - every other topic: the same CID of the payload bytes themselves (`cborCid`), as audit
 *   reports are published.
 */
import { cborCid, decodeCanonical, isMap } from './cbor.ts'
import { MAX_ENVELOPE_BYTES } from './envelope.ts'

/** The short name of the topic whose payloads are publish envelopes. */
export const CONTENT_TOPIC = 'content'

/** The ID `payload` must be broadcast under on `topic` (short name), or undefined if it can have none (not an envelope on `content`). */
export async function messageIdOf (topic: string, payload: Uint8Array): Promise<string | undefined> {
  if (topic !== CONTENT_TOPIC) return (await cborCid(payload)).toString()
  if (payload.length > MAX_ENVELOPE_BYTES) return undefined
  const decoded = decodeCanonical(payload)
  if (!decoded.ok || !isMap(decoded.value) || !(decoded.value.entry instanceof Uint8Array)) return undefined
  return (await cborCid(decoded.value.entry)).toString()
}
