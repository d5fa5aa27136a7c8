/**
 * How a profile-log entry is pinned. Each entry gets its own pin, owned by its author
 * (`author:<peer id>`, so the author's quota counts its whole log and content), whose root
 * is the entry block. The pin follows the entry's params links recursively but not `prev`:
 * the ancestors are entries too and each holds itself, so a log of n entries costs n pins
 * of one entry each, not n pins of up to n entries.
 */
import * as dagCbor from '@ipld/dag-cbor'
import type { CID } from 'multiformats/cid'
import { contentLinks } from '@pharos/protocol/log/index.ts'
import type { UnsignedEntry } from '@pharos/protocol/log/index.ts'

/** The pin's meta key and value that mark it as an entry's pin. */
export const PIN_KIND_KEY = 'pharos:kind'
export const LOG_ENTRY_KIND = 'log-entry'
const AUTHOR_OWNER_PREFIX = 'author:'

export function authorOwner (author: string): string {
  return AUTHOR_OWNER_PREFIX + author
}

export function isAuthorOwner (owner: string): boolean {
  return owner.startsWith(AUTHOR_OWNER_PREFIX)
}

/** The links of an entry pin's root block: its content, never `prev`. */
export function entryPinLinks (bytes: Uint8Array): CID[] {
  return contentLinks(dagCbor.decode<UnsignedEntry>(bytes))
}
