/**
 * The workspaces' package.json files say what each package needs (issue 22, item 1): every
 * package a source file imports is declared, production code only from `dependencies`, and
 * nothing is declared that no file imports. The peer SDK ships without the server's
 * dependencies: `npm pack` packs only its sources, and its production closure as npm
 * installed it holds no Postgres, Redis, HTTP-server or PGlite package.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const PACKAGES = ['protocol', 'net', 'beacon', 'peer', 'testing']
/** Folders whose code ships (`dependencies`); everything else in a package is for its tests. */
const PRODUCTION_FOLDERS = ['src', 'bin', 'sim']
const SERVER_PACKAGE = /^(pg|pg-.+|ioredis|fastify|@fastify\/.+|@electric-sql\/pglite)$/

interface Manifest {
  name: string
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
}

async function manifest (dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest
}

async function sourceFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter((entry) => entry.isFile() && /\.(ts|js)$/.test(entry.name)).map((entry) => join(entry.parentPath, entry.name))
}

/** Static and dynamic import statements, and re-exports; not strings that merely mention an import. */
const IMPORT = /(?:^|[\n;}])\s*(?:import|export)\b[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

/** The package each bare import of `file` names (`@scope/name` or `name`), without Node's builtins. */
async function importedPackages (file: string): Promise<string[]> {
  const source = await readFile(file, 'utf8')
  const names: string[] = []
  for (const match of source.matchAll(IMPORT)) {
    const specifier = match[1] ?? match[2] ?? match[3] ?? ''
    if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0] ?? '')) continue
    const parts = specifier.split('/')
    names.push(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0] ?? specifier)
  }
  return names
}

/** Package name → the files that import it, for the files under `folders` of `dir` (or all but them). */
async function importsOf (dir: string, production: boolean): Promise<Map<string, string[]>> {
  const folders = production ? PRODUCTION_FOLDERS : (await readdir(dir)).filter((name) => !PRODUCTION_FOLDERS.includes(name) && name !== 'node_modules')
  const found = new Map<string, string[]>()
  for (const folder of folders) {
    for (const file of await sourceFiles(join(dir, folder))) {
      for (const name of await importedPackages(file)) found.set(name, [...(found.get(name) ?? []), relative(ROOT, file)])
    }
  }
  return found
}

describe('workspace package manifests', () => {
  for (const name of PACKAGES) {
    const dir = join(ROOT, 'services', name)
    it(`@pharos/${name} declares what it imports, production code from dependencies only, and nothing it does not import`, async () => {
      const pkg = await manifest(dir)
      assert.equal(pkg.name, `@pharos/${name}`)
      const dependencies = Object.keys(pkg.dependencies ?? {})
      const devDependencies = Object.keys(pkg.devDependencies ?? {})
      const production = await importsOf(dir, true)
      const tests = await importsOf(dir, false)
      for (const [imported, files] of production) {
        assert.ok(dependencies.includes(imported), `${imported} is imported by ${files.join(', ')} but is not in ${name}'s dependencies`)
      }
      for (const [imported, files] of tests) {
        assert.ok(dependencies.includes(imported) || devDependencies.includes(imported), `${imported} is imported by ${files.join(', ')} but ${name} does not declare it`)
      }
      for (const declared of dependencies) {
        assert.ok(production.has(declared), `${name} depends on ${declared}, which none of its ${PRODUCTION_FOLDERS.join('/')} files imports`)
      }
      for (const declared of devDependencies.filter((dev) => !dev.startsWith('@types/'))) {
        assert.ok(tests.has(declared), `${name} has the devDependency ${declared}, which none of its test files imports`)
      }
    })
  }

  it('protocol depends on multiformats and the IPLD codecs only', async () => {
    const { dependencies = {} } = await manifest(join(ROOT, 'services', 'protocol'))
    for (const name of Object.keys(dependencies)) assert.match(name, /^(multiformats|@ipld\/.+)$/)
  })

  it('npm pack of the peer SDK holds its sources and no server dependency', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json'], { cwd: join(ROOT, 'services', 'peer') })
    const [packed] = JSON.parse(stdout) as Array<{ name: string, files: Array<{ path: string }> }>
    assert.ok(packed !== undefined)
    assert.equal(packed.name, '@pharos/peer')
    const paths = packed.files.map((file) => file.path)
    for (const expected of ['package.json', 'src/index.ts', 'bin/pharos-peer.js']) assert.ok(paths.includes(expected), `${expected} is packed`)
    for (const path of paths) assert.match(path, /^(package\.json|src\/.+|bin\/.+)$/, `only sources are packed, not ${path}`)
    const packedManifest = await manifest(join(ROOT, 'services', 'peer'))
    const declared = [...Object.keys(packedManifest.dependencies ?? {}), ...Object.keys(packedManifest.devDependencies ?? {})]
    assert.deepEqual(declared.filter((name) => SERVER_PACKAGE.test(name)), [])
  })

  /** Every package npm installed for the workspace's production closure, by name. */
  async function productionClosure (workspace: string): Promise<string[]> {
    const { stdout } = await run('npm', ['ls', '--omit=dev', `--workspace=${workspace}`, '--all', '--parseable'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 })
    return stdout.split('\n').filter((line) => line.includes('node_modules')).map((line) => line.slice(line.lastIndexOf('node_modules/') + 'node_modules/'.length))
  }

  it('the peer SDK\'s installed production closure holds no server package (the beacon\'s does)', async () => {
    const beacon = await productionClosure('@pharos/beacon')
    // The check is not vacuous: the beacon's closure has them.
    for (const server of ['pg', 'ioredis', 'fastify', '@electric-sql/pglite']) assert.ok(beacon.includes(server), `${server} is in the beacon's closure`)
    const peer = await productionClosure('@pharos/peer')
    assert.ok(peer.includes('libp2p') && peer.includes('@pharos/net') && peer.includes('@pharos/protocol'), 'the peer closure was listed')
    assert.deepEqual(peer.filter((name) => SERVER_PACKAGE.test(name)), [])
  })
})
