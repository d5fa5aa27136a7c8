import { readFileSync } from 'node:fs'

/**
 * The version of the Pharos package this worker runs (package.json at the repository root,
 * and at /app in the image): what `pharos-beacon --version` prints.
 */
export function packageVersion (): string {
  const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
  if (typeof manifest.version !== 'string') throw new TypeError('package.json has no version')
  return manifest.version
}
