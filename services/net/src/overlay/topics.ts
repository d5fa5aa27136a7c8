/**
 * The overlay topics every Pharos node takes part in (DESIGN.md §3), by short name; on the
 * wire they are `/<network>/<name>`. Being a fixed, configured set, they may label metrics.
 */
/** `audit`: workers' signed storage audit reports (docs/audits.md), for peers that watch them. */
export const OVERLAY_TOPICS = ['content', 'sync', 'keyexchange', 'audit'] as const

export type OverlayTopic = (typeof OVERLAY_TOPICS)[number]
