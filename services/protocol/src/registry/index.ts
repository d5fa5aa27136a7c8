/**
 * The registry of accounts, shared by the beacon (serves it) and the peer SDK (keeps a copy),
 * with no I/O: the signed page format and the replica a peer keeps. See docs/registry.md.
 */
export {
  checkRegistryRequest,
  decodeRegistryRequest,
  DEFAULT_REGISTRY_PAGE,
  encodeRegistryRequest,
  formatRegistryCursor,
  MAX_REGISTRY_PAGE,
  MAX_REGISTRY_REQUEST_BYTES,
  MAX_REGISTRY_RESPONSE_BYTES,
  openRegistryPage,
  parseRegistryCursor,
  REGISTRY_STATEMENT_KIND,
  registryProtocolId,
  signRegistryPage
} from './registry.ts'
export type { RegistryDecoded, RegistryErrorCode, RegistryPage, RegistryPageBody, RegistryPageKind, RegistryPageResult, RegistryRequest } from './registry.ts'
export { RegistryOutOfOrderError, RegistryReplica } from './registry-replica.ts'
export type { RegistryApplied } from './registry-replica.ts'
