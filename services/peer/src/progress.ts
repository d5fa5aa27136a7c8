/**
 * Progress of the SDK's long calls, Helia-style: an `onProgress` option (ProgressOptions from
 * `progress-events`, as Helia and js-libp2p take it) called with events that have a `type`
 * and a `detail`. Counts in a detail are totals since the call began, so a listener can show
 * the latest and drop the rest.
 *
 *   await peer.fetchLog(author, { onProgress: (event) => { if (event.type === 'pharos:fetch-log:entry') show(event.detail.entries) } })
 */
import { CustomProgressEvent } from 'progress-events'
import type { ProgressEvent, ProgressOptions } from 'progress-events'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { EntryStatus } from '@pharos/protocol/log/index.ts'

/** Where a `fetchLog` stands. */
export interface FetchLogProgress {
  author: string
  /** Entries verified so far, head first. */
  entries: number
  /** Entries in the log: the head's seq + 1. */
  total: number
  /** Bytes of the entries verified so far. */
  bytes: number
}

export type FetchLogProgressEvents =
  /** The head the walk starts from is known (the best of the beacons' and the peer's own). */
  | ProgressEvent<'pharos:fetch-log:head', FetchLogProgress & { head: CID }>
  /** One more entry verified (fetched, or held and re-verified). */
  | ProgressEvent<'pharos:fetch-log:entry', FetchLogProgress & { cid: CID, seq: number }>

export interface FetchLogOptions extends AbortOptions, ProgressOptions<FetchLogProgressEvents> {}

/** Where a `fetchPost` stands. */
export interface FetchPostProgress {
  /** The post body's CID. */
  post: CID
  /** Blocks fetched (or found locally) and verified so far: the body and the attachments' DAGs. */
  blocks: number
  /** Bytes of those blocks. */
  bytes: number
  /** Attachments complete so far, of `totalAttachments` (known once the body is read). */
  attachments: number
  totalAttachments: number
}

export type FetchPostProgressEvents =
  | ProgressEvent<'pharos:fetch-post:block', FetchPostProgress & { cid: CID }>
  | ProgressEvent<'pharos:fetch-post:attachment', FetchPostProgress & { name: string }>

export interface FetchPostOptions extends AbortOptions, ProgressOptions<FetchPostProgressEvents> {}

/** Where a `publishPost` stands. */
export interface PublishPostProgress {
  /** Blocks written to the local blockstore so far: attachment leaves, then the body. */
  blocks: number
  /** Attachment bytes written so far. */
  bytes: number
  attachments: number
  totalAttachments: number
}

export type PublishPostProgressEvents =
  | ProgressEvent<'pharos:publish-post:block', PublishPostProgress & { cid: CID }>
  | ProgressEvent<'pharos:publish-post:attachment', PublishPostProgress & { name: string }>
  /** The entry is signed, kept and broadcast: what beacons fetch and pin from here. */
  | ProgressEvent<'pharos:publish-post:entry', PublishPostProgress & { cid: CID, seq: number }>

export interface PublishPostOptions extends AbortOptions, ProgressOptions<PublishPostProgressEvents> {}

export type WaitUntilHeldProgressEvents =
  /** A beacon answered a status poll: each CID's state, and how many are held as asked. */
  | ProgressEvent<'pharos:wait-until-held:status', { statuses: ReadonlyArray<{ cid: CID, status: EntryStatus }>, held: number, total: number }>

/** Calls `onProgress`, if given, with a `CustomProgressEvent` of `type` and `detail`. */
export function report<Event extends ProgressEvent> (options: ProgressOptions<Event>, type: Event['type'], detail: Event['detail']): void {
  options.onProgress?.(new CustomProgressEvent(type, detail) as unknown as Event)
}
