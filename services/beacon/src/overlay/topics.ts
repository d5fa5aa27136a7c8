/**
 * The overlay topics every Pharos node takes part in (DESIGN.md §3), by short name; on the
 * wire they are `/<network>/<name>`. Being a fixed, configured set, they may label metrics.
 */
export const OVERLAY_TOPICS = ['content', 'sync', 'keyexchange'] as const

export type OverlayTopic = (typeof OVERLAY_TOPICS)[number]
