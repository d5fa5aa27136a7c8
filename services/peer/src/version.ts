import { readFileSync } from 'node:fs'

/** The version of the Pharos package the SDK belongs to (the root package.json): what `pharos-peer --version` prints. */
export function packageVersion (): string {
  const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
  if (typeof manifest.version !== 'string') throw new TypeError('package.json has no version')
  return manifest.version
}
