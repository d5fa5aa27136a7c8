/**
 * The operator surface (issue 7) checked against the worker, since no container, helm or
 * Prometheus server runs here: deploy/Dockerfile against package.json and the sources
 * main.ts loads; docker-compose.yml and the Helm chart against the config schema and
 * loadConfig; Prometheus config and rules through promtool; and every metric the alert
 * rules and Grafana dashboards use against the /metrics of a real fleet worker.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir, totalmem } from 'node:os'
import { dirname, join, normalize, relative } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import yaml from 'js-yaml'
import { loadConfig } from '@pharos/beacon/config/load.ts'
import { withChartConfigKeys } from '@pharos/beacon/config/docs.ts'
import { PUBLIC_ADMIN_TOKENS, PUBLIC_FLEET_SECRETS } from '@pharos/beacon/config/public-secrets.ts'
import type { Config, KeySpec } from '@pharos/beacon/config/schema.ts'
import { schema } from '@pharos/beacon/config/schema.ts'
import { deriveWorkerKey } from '@pharos/beacon/p2p/identity.ts'
import { createTestDatabase, testFleet } from '@pharos/testing/databases.ts'
import {
  ROOT, chartValues, composeVariables, dashboardQueries, definedTemplateNames, execForm, interpolate, interpolateAll, isExported, parseCopy,
  parseDockerfile, parseDotEnv, parseEnvArgs, parseExposition, parsePort, promqlMetricNames, readRepoFile, readYaml, renderChart,
  serviceEnvironment, setValue, substituteGrafanaVariables, validateChartValues, ChartValuesError
} from './deploy-files.ts'
import type { ChartRender, DockerStage, GrafanaDashboard, Manifest, RuleFile } from './deploy-files.ts'
import { spawnWorker, stopWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

const run = promisify(execFile)

const specs: Array<KeySpec<unknown>> = Object.values(schema)
const CONFIG_KEYS = new Set(specs.map((spec) => spec.env))
const SECRET_KEYS = new Set(specs.filter((spec) => spec.secret === true).map((spec) => spec.env))
const DEFAULTS = loadConfig({})
/** Fleet mode: both URLs, and an identity from config (DESIGN.md §2). */
const FLEET_KEYS = ['DATABASE_URL', 'REDIS_URL', 'PHAROS_FLEET_SECRET'] as const
const CHART = join(ROOT, 'helm/pharos')
const ALERTS_FILE = 'deploy/prometheus/rules/pharos-alerts.yml'
const RULE_FILES = readdirSync(join(ROOT, 'deploy/prometheus/rules')).filter((file) => file.endsWith('.yml')).map((file) => `deploy/prometheus/rules/${file}`)
const ALERTMANAGER_FILE = 'deploy/alertmanager/alertmanager.yml'
const RULE_TEST_FILES = readdirSync(join(ROOT, 'deploy/prometheus/tests')).filter((file) => file.endsWith('.test.yml')).map((file) => `deploy/prometheus/tests/${file}`)
const DASHBOARD_FILES = readdirSync(join(ROOT, 'deploy/grafana/dashboards')).filter((file) => file.endsWith('.json')).map((file) => `deploy/grafana/dashboards/${file}`)

async function amtool (...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('amtool', args, { cwd: ROOT })
    return stdout + stderr
  } catch (err) {
    const failure = err as NodeJS.ErrnoException & { stdout?: string, stderr?: string }
    if (failure.code === 'ENOENT') throw new Error('amtool is not installed: it is in the Debian package `prometheus-alertmanager` (apt-get install prometheus-alertmanager)', { cause: err })
    throw new Error(`amtool ${args.join(' ')} failed:\n${failure.stdout ?? ''}${failure.stderr ?? ''}`, { cause: err })
  }
}

/** An Alertmanager config with its commented examples taken in: each `#|` at a line's start removed. */
function withExamples (config: string): string {
  return config.replace(/^#\|/gm, '')
}

async function promtool (...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: ROOT })
    return stdout + stderr
  } catch (err) {
    const failure = err as NodeJS.ErrnoException & { stdout?: string, stderr?: string }
    if (failure.code === 'ENOENT') throw new Error('promtool is not installed: it is in the Debian package `prometheus` (apt-get install prometheus)', { cause: err })
    throw new Error(`promtool ${args.join(' ')} failed:\n${failure.stdout ?? ''}${failure.stderr ?? ''}`, { cause: err })
  }
}

/** Config keys of a set of env names: every name must be one. */
function assertConfigKeys (names: Iterable<string>, where: string): void {
  const unknown = [...names].filter((name) => !CONFIG_KEYS.has(name))
  assert.deepEqual(unknown, [], `${where}: not worker config keys (services/beacon/src/config/schema.ts)`)
}

function loads (env: Record<string, string>, where: string): Config {
  try {
    return loadConfig(env)
  } catch (err) {
    assert.fail(`${where}: loadConfig refuses it: ${err instanceof Error ? err.message : String(err)}`)
  }
}

async function peerIdOf (config: Config): Promise<string> {
  assert.ok(config.fleetSecret !== undefined && config.workerName !== undefined)
  return peerIdFromPrivateKey(await deriveWorkerKey(config.fleetSecret, config.network, config.workerName)).toString()
}

/** `/ip4/1.2.3.4/tcp/4001` or `/dns4/x/tcp/4002/ws` → port and transport. */
function announced (addr: string): { host: string, port: number, ws: boolean } {
  const match = /^\/(?:ip4|ip6|dns4|dns6|dns)\/([^/]+)\/tcp\/(\d+)(\/ws)?$/.exec(addr)
  assert.ok(match !== null, `announce address not understood: ${addr}`)
  return { host: match[1] ?? '', port: Number(match[2]), ws: match[3] !== undefined }
}

function seconds (duration: string): number {
  const match = /^(\d+)(ms|s|m)$/.exec(duration)
  assert.ok(match !== null, `duration not understood: ${duration}`)
  const unit = match[2] === 'ms' ? 0.001 : match[2] === 'm' ? 60 : 1
  return Number(match[1]) * unit
}

// -------------------------------------------------------------------------- Dockerfile

const stages = parseDockerfile(readRepoFile('deploy/Dockerfile'))
const finalStage = stages.at(-1) as DockerStage
const packageJson = JSON.parse(readRepoFile('package.json')) as { scripts: Record<string, string> }
const imageEnv: Record<string, string> = Object.assign({}, ...finalStage.instructions.filter((i) => i.keyword === 'ENV').map((i) => parseEnvArgs(i.args)))

/** Paths (in the image) the final stage copies from the build context or another stage. */
function copiedPaths (stage: DockerStage): Array<{ from: string | undefined, source: string, dest: string }> {
  const workdir = stage.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)?.args ?? '/'
  return stage.instructions.filter((i) => i.keyword === 'COPY').flatMap((i) => {
    const copy = parseCopy(i.args)
    return copy.sources.map((source) => ({ from: copy.from, source, dest: normalize(join(workdir, copy.dest)) }))
  })
}

describe('deploy/Dockerfile', () => {
  it('is multi-stage, every stage on an official Node 22 slim image', () => {
    assert.ok(stages.length >= 2, 'multi-stage')
    for (const stage of stages) assert.match(stage.image, /^node:22(\.\d+)*-(bookworm-|bullseye-)?slim$/, `stage ${stage.name ?? ''}`)
  })

  it('copies only files that exist, from stages that made them', () => {
    const names = stages.map((stage) => stage.name)
    for (const [index, stage] of stages.entries()) {
      for (const copy of copiedPaths(stage)) {
        if (copy.from === undefined) {
          assert.ok(existsSync(join(ROOT, copy.source)), `COPY ${copy.source}: no such file in the repository`)
          continue
        }
        const producer = names.indexOf(copy.from)
        assert.ok(producer !== -1 && producer < index, `COPY --from=${copy.from}: no earlier stage of that name`)
        const made = stages[producer] as DockerStage
        const madeHere = copiedPaths(made).some((earlier) => copy.source === earlier.dest || copy.source.startsWith(`${earlier.dest}/`)) ||
          (copy.source.endsWith('/node_modules') && made.instructions.some((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args)))
        assert.ok(madeHere, `COPY --from=${copy.from} ${copy.source}: that stage neither copies nor installs it`)
      }
    }
  })

  it('runs only package.json scripts, installs from the lockfile with its patches, production dependencies only', () => {
    for (const stage of stages) {
      const seen: string[] = []
      for (const instruction of stage.instructions) {
        if (instruction.keyword === 'COPY') seen.push(...parseCopy(instruction.args).sources)
        if (instruction.keyword !== 'RUN') continue
        for (const script of instruction.args.matchAll(/npm run ([\w:-]+)/g)) assert.ok(packageJson.scripts[script[1] ?? ''] !== undefined, `npm run ${script[1] ?? ''}: no such script`)
        assert.doesNotMatch(instruction.args, /npm install\b/, 'npm ci, not npm install: the lockfile decides')
        if (/\bnpm ci\b/.test(instruction.args)) {
          assert.ok(seen.includes('package-lock.json'), `stage ${stage.name ?? ''}: npm ci needs package-lock.json copied first`)
          if (/patch-package/.test(packageJson.scripts.postinstall ?? '')) assert.ok(seen.includes('patches'), 'postinstall runs patch-package: patches/ must be copied before npm ci')
        }
      }
    }
    const modules = copiedPaths(finalStage).find((copy) => copy.source.endsWith('node_modules'))
    assert.ok(modules?.from !== undefined, 'the final stage takes node_modules from another stage')
    const installer = stages.find((stage) => stage.name === modules.from) as DockerStage
    assert.ok(installer.instructions.some((i) => i.keyword === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(i.args)), `stage ${modules.from} installs with npm ci --omit=dev`)
    assert.ok(!finalStage.instructions.some((i) => i.keyword === 'RUN' && /\bnpm (ci|install)\b/.test(i.args)), 'the final stage installs nothing itself')
  })

  it('carries every module main.ts loads: sources it copies, each workspace\'s manifest, and production dependencies', () => {
    const copied = copiedPaths(finalStage).filter((copy) => copy.from === undefined).map((copy) => copy.source.replace(/\/$/, ''))
    assert.ok(copied.includes('package.json'), 'package.json ("type": "module") is in the image')
    const seen = new Set<string>()
    /** Workspace folder (services/<name>) → the packages its loaded files import. */
    const imports = new Map<string, Set<string>>()
    const workspaceOf = (file: string): string => /^services\/[^/]+/.exec(file)?.[0] ?? assert.fail(`${file} is outside the workspaces`)
    const visit = (file: string): void => {
      if (seen.has(file)) return
      seen.add(file)
      assert.ok(copied.some((dir) => file === dir || file.startsWith(`${dir}/`)), `${file} is loaded at run time but not copied into the image`)
      const source = readRepoFile(file)
      const specifiers = [
        ...[...source.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1] ?? ''),
        ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? '')
      ]
      for (const specifier of specifiers) {
        if (specifier.startsWith('node:')) continue
        if (specifier.startsWith('.')) { visit(normalize(join(dirname(file), specifier))); continue }
        const parts = specifier.split('/')
        const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0] ?? ''
        const workspace = workspaceOf(file)
        imports.set(workspace, (imports.get(workspace) ?? new Set()).add(name))
        const local = /^@pharos\/([^/]+)\/(.+)$/.exec(specifier)
        if (local !== null) {
          // A workspace imported by name resolves through its package.json's exports ("./*" → "./src/*").
          const manifest = `services/${local[1] ?? ''}/package.json`
          assert.ok(copied.includes(manifest), `${manifest} maps ${specifier} but is not copied into the image`)
          const exports = (JSON.parse(readRepoFile(manifest)) as { exports: Record<string, string> }).exports
          const target = exports['./*'] ?? assert.fail(`${manifest} exports no "./*"`)
          visit(join('services', local[1] ?? '', normalize(target.replace('*', local[2] ?? ''))))
        }
      }
    }
    const entrypoint = execForm(finalStage.instructions.find((i) => i.keyword === 'ENTRYPOINT')?.args ?? '') ?? []
    visit(entrypoint[1] ?? '')
    const packages = new Set([...imports.values()].flatMap((names) => [...names]))
    assert.ok(seen.size > 50 && packages.size > 10, `walked ${seen.size} files importing ${packages.size} packages`)
    assert.ok([...seen].some((file) => file.startsWith('services/protocol/')) && [...seen].some((file) => file.startsWith('services/net/')), 'the walk followed @pharos/protocol and @pharos/net')
    for (const dir of ['services/beacon/src/storage/migrations']) assert.ok(copied.some((copy) => dir.startsWith(copy)), `${dir} (read at run time) is copied`)
    for (const [workspace, names] of imports) {
      const { dependencies = {} } = JSON.parse(readRepoFile(`${workspace}/package.json`)) as { dependencies?: Record<string, string> }
      const notProduction = [...names].filter((name) => dependencies[name] === undefined)
      assert.deepEqual(notProduction, [], `imported at run time by ${workspace} but not in its package.json dependencies (the image has no devDependencies)`)
    }
  })

  it('runs as a non-root user, exposes the default p2p and HTTP ports, starts the start script\'s file', () => {
    const user = finalStage.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args
    assert.ok(user !== undefined && !['root', '0', '0:0'].includes(user), 'the final stage runs as a non-root USER')
    const exposed = finalStage.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((port) => Number(port.replace(/\/tcp$/, '')))
    assert.deepEqual(exposed.sort(), [DEFAULTS.p2pTcpPort, DEFAULTS.p2pWsPort, DEFAULTS.httpPort].sort())
    const start = /^node (\S+)$/.exec(packageJson.scripts.start ?? '')
    assert.ok(start !== null, 'the start script is `node <file>`')
    assert.deepEqual(execForm(finalStage.instructions.find((i) => i.keyword === 'ENTRYPOINT')?.args ?? ''), ['node', start[1]])
  })

  it('sets only config keys, binds HTTP for a container, and health-checks /healthz on the HTTP port', () => {
    assertConfigKeys(Object.keys(imageEnv).filter((key) => key !== 'NODE_ENV'), 'Dockerfile ENV')
    const config = loads(imageEnv, 'Dockerfile ENV')
    assert.equal(config.httpHost, '0.0.0.0', 'Fastify listens on 127.0.0.1 by default; a container needs 0.0.0.0')
    const healthcheck = finalStage.instructions.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? ''
    assert.match(healthcheck, /'\/healthz'/)
    assert.match(healthcheck, /PHAROS_HTTP_PORT \|\| '(\d+)'/)
    assert.equal(Number(/PHAROS_HTTP_PORT \|\| '(\d+)'/.exec(healthcheck)?.[1]), DEFAULTS.httpPort)
  })
})

// ----------------------------------------------------------------------- docker compose

interface ComposeService {
  image?: string
  build?: { context: string, dockerfile: string }
  environment?: Record<string, unknown>
  ports?: string[]
  volumes?: string[]
  depends_on?: Record<string, { condition: string }> | string[]
  healthcheck?: unknown
  command?: string[]
  stop_grace_period?: string
}
interface ComposeFile { services: Record<string, ComposeService>, volumes?: Record<string, unknown> }

/** Stand-ins for the `$(openssl rand …)` of a documented command (the chart's install, the compose .env). */
function standIn (value: string): string {
  return value.replace(/\$\(openssl rand -base64 (\d+)\)/g, (_all, n: string) => Buffer.alloc(Number(n), 7).toString('base64'))
    .replace(/\$\(openssl rand -hex (\d+)\)/g, (_all, n: string) => 'ab'.repeat(Number(n)))
}

/** The `.env` the README's one command makes for the quick start, each `$(…)` given a stand-in. */
function readmeDotEnv (): Record<string, string> {
  const block = /^cat > \.env <<ENV\n([\s\S]*?)\nENV$/m.exec(readRepoFile('README.md'))?.[1]
  assert.ok(block !== undefined, 'the README has the command that makes .env')
  const env: Record<string, string> = {}
  for (const line of block.split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line)
    assert.ok(match !== null, `.env line not understood: ${line}`)
    const value = standIn(match[2] ?? '')
    assert.doesNotMatch(value, /\$\(/, `a stand-in for ${line}`)
    env[match[1] ?? ''] = value
  }
  return env
}

const composeRaw = readYaml<ComposeFile>('docker-compose.yml')
/** The quick start's `.env`, made by the README's command. */
const quickStartEnv = readmeDotEnv()
/** As `docker compose up` sees it on a fresh machine with the README's .env and nothing exported. */
const compose = interpolateAll(composeRaw, quickStartEnv)
const workerServices = Object.entries(compose.services).filter(([, service]) => service.build?.dockerfile === 'deploy/Dockerfile')
/** What each worker process sees: the image's ENV under the service's environment. */
const workerEnvs = workerServices.map(([name, service]) => ({ name, service, env: { ...imageEnv, ...serviceEnvironment(service) } }))
const prometheusConfig = readYaml<{ rule_files: string[], scrape_configs: Array<{ job_name: string, metrics_path?: string, static_configs: Array<{ targets: string[] }> }> }>('deploy/prometheus/prometheus.yml')
const pharosJob = prometheusConfig.scrape_configs.find((job) => job.job_name === 'pharos')

/** `./host/path:/container/path[:ro]` bind mounts of a service. */
function bindMounts (service: ComposeService): Array<{ source: string, target: string }> {
  return (service.volumes ?? []).filter((volume) => volume.startsWith('./')).map((volume) => {
    const [source = '', target = ''] = volume.split(':')
    return { source: normalize(source), target }
  })
}

describe('docker-compose.yml', () => {
  it('runs Postgres on a volume, Redis, three workers of the image, Prometheus and Grafana', () => {
    const postgres = compose.services.postgres
    assert.match(postgres?.image ?? '', /^postgres:\d+/)
    const dataVolume = postgres?.volumes?.find((volume) => volume.endsWith(':/var/lib/postgresql/data'))
    assert.ok(dataVolume !== undefined && compose.volumes?.[dataVolume.split(':')[0] ?? ''] !== undefined, 'Postgres data is on a named volume')
    assert.match(compose.services.redis?.image ?? '', /^redis:\d+/)
    assert.ok(postgres?.healthcheck !== undefined && compose.services.redis?.healthcheck !== undefined)
    assert.equal(workerServices.length, 3, 'three beacon workers built from deploy/Dockerfile')
    for (const [name, service] of workerServices) {
      assert.deepEqual(service.depends_on, { postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } }, `${name} starts once Postgres and Redis answer`)
    }
    assert.match(compose.services.prometheus?.image ?? '', /^prom\/prometheus:v2\./)
    assert.match(compose.services.grafana?.image ?? '', /^grafana\/grafana:\d+/)
    for (const [name, service] of Object.entries(compose.services)) {
      const depends = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {})
      for (const dependency of depends) assert.ok(compose.services[dependency] !== undefined, `${name} depends on a service that does not exist: ${dependency}`)
    }
  })

  it('gives the workers only config keys, every fleet key, and values loadConfig accepts', () => {
    const postgresEnv = serviceEnvironment(compose.services.postgres ?? {})
    for (const { name, service, env } of workerEnvs) {
      assertConfigKeys(Object.keys(serviceEnvironment(service)), `${name} environment`)
      for (const key of FLEET_KEYS) assert.ok((env[key] ?? '') !== '', `${name}: ${key} is set (fleet mode)`)
      const config = loads(env, name)
      const database = new URL(config.databaseUrl ?? '')
      assert.equal(database.hostname, 'postgres')
      assert.equal(decodeURIComponent(database.username), postgresEnv.POSTGRES_USER)
      assert.equal(decodeURIComponent(database.password), postgresEnv.POSTGRES_PASSWORD)
      assert.equal(database.pathname, `/${postgresEnv.POSTGRES_DB ?? ''}`)
      assert.equal(new URL(config.redisUrl ?? '').hostname, 'redis')
      assert.equal(config.httpHost, '0.0.0.0')
    }
  })

  it('gives no secret a default: each comes from .env as ${VAR:?…}, and up without one stops naming it', () => {
    // Variables that carry a secret: those of the schema's secret keys, and the passwords.
    const secretVariables = new Set<string>()
    const secretEntries = [...SECRET_KEYS, 'POSTGRES_PASSWORD', 'GF_SECURITY_ADMIN_PASSWORD']
    for (const [name, service] of Object.entries(composeRaw.services)) {
      for (const [key, value] of Object.entries(serviceEnvironment(service))) {
        if (!secretEntries.includes(key)) continue
        const interpolations = [...value.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?[^}]*\}/g)]
        for (const [whole, variable, op] of interpolations) {
          assert.equal(op, ':?', `${name} ${key}: ${whole} must be required (\${VAR:?message}), never defaulted`)
          secretVariables.add(variable ?? '')
        }
        // A URL's credentials come from .env; the rest of it may be literal.
        if (key === 'DATABASE_URL' || key === 'REDIS_URL') {
          const url = new URL(interpolate(value, Object.fromEntries([...secretVariables].map((variable) => [variable, 'from-dot-env']))))
          assert.ok(url.password === '' || url.password === 'from-dot-env', `${name} ${key}: a literal password`)
          continue
        }
        assert.equal(interpolations.length, 1, `${name} ${key}: one required variable`)
        assert.equal(interpolations[0]?.[0], value, `${name} ${key}: nothing but the variable (no literal secret)`)
      }
    }
    assert.deepEqual([...secretVariables].sort(), ['GRAFANA_ADMIN_PASSWORD', 'PHAROS_ADMIN_TOKENS', 'PHAROS_FLEET_SECRET', 'PHAROS_KEY_SEALING_SECRET', 'POSTGRES_PASSWORD'])
    // Nowhere else in the file either: no other use of them may default.
    const text = readRepoFile('docker-compose.yml')
    for (const variable of secretVariables) {
      for (const use of text.matchAll(new RegExp(`\\$\\{${variable}(:?[-?+])?`, 'g'))) assert.equal(use[1], ':?', `every use of ${variable} is required`)
    }
    // The README's .env sets each one, and without any one of them compose stops, naming it.
    assert.deepEqual(Object.keys(quickStartEnv).filter((variable) => secretVariables.has(variable)).sort(), [...secretVariables].sort())
    for (const variable of secretVariables) {
      const { [variable]: _missing, ...rest } = quickStartEnv
      assert.throws(() => interpolateAll(composeRaw, rest), new RegExp(`compose: ${variable} is required`))
    }
  })

  it('ships a .env.example naming every variable it reads; copied as is, up stops naming each secret, filled in, the workers load', () => {
    const text = readRepoFile('.env.example')
    const example = parseDotEnv(text)
    const variables = composeVariables(readRepoFile('docker-compose.yml'))
    const required = [...variables].filter(([, uses]) => uses.has(':?')).map(([name]) => name).sort()
    assert.ok(required.includes('PHAROS_FLEET_SECRET') && required.includes('PHAROS_ADMIN_TOKENS'), 'the fleet secret and admin tokens are required')
    // Each required variable is there to be filled in, empty: no value to leak, and up refuses it as it is.
    assert.deepEqual(Object.keys(example).sort(), required, '.env.example assigns exactly the required variables')
    for (const name of required) assert.equal(example[name], '', `${name} is empty in .env.example`)
    // The optional ones are there too, commented out with their default.
    for (const [name, uses] of variables) {
      if (uses.has(':?')) continue
      const shown = new RegExp(`^# ${name}=(.*)$`, 'm').exec(text)
      assert.ok(shown !== null, `.env.example shows ${name} (as "# ${name}=<default>")`)
      const fallback = new RegExp(`\\$\\{${name}:-([^}]*)\\}`).exec(readRepoFile('docker-compose.yml'))?.[1]
      assert.equal(shown[1], fallback, `${name}: the default .env.example shows is compose's`)
    }
    // Copied as is, compose stops at the first secret still empty; each one is named once the others are filled.
    assert.throws(() => interpolateAll(composeRaw, example), /compose: [A-Z_]+ is required/)
    for (const name of required) {
      const filled = { ...example, ...Object.fromEntries(required.filter((other) => other !== name).map((other) => [other, quickStartEnv[other] ?? ''])) }
      assert.throws(() => interpolateAll(composeRaw, filled), new RegExp(`compose: ${name} is required`))
    }
    // Filled in as the README's command does, the workers load.
    const ready = interpolateAll(composeRaw, { ...example, ...quickStartEnv })
    for (const [name, service] of Object.entries(ready.services).filter(([, s]) => s.build?.dockerfile === 'deploy/Dockerfile')) loads({ ...imageEnv, ...serviceEnvironment(service) }, name)
    assert.match(readRepoFile('README.md'), /`cp \.env\.example \.env`/, 'the README quick start names it')
    assert.match(readRepoFile('.gitignore'), /^\.env$/m, '.env is ignored by git')
  })

  it('holds no secret this repository ever published as a default, nor do the chart and the docs', () => {
    const published = [...PUBLIC_FLEET_SECRETS, ...PUBLIC_ADMIN_TOKENS]
    const files = ['docker-compose.yml', 'README.md', 'helm/pharos/values.yaml', 'helm/pharos/README.md', ...readdirSync(join(ROOT, 'docs')).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)]
    for (const file of files) {
      const text = readRepoFile(file)
      for (const secret of published) assert.ok(!text.includes(secret), `${file} holds the published default ${secret}`)
    }
    const values = chartValues(CHART) as { secretConfig: Record<string, unknown> }
    for (const [key, value] of Object.entries(values.secretConfig)) assert.equal(value, '', `the chart has no default for secretConfig.${key}`)
  })

  it('gives each worker its own name, and so a peer ID of its own', async () => {
    const configs = workerEnvs.map(({ name, env }) => loads(env, name))
    assert.equal(new Set(configs.map((config) => config.workerName)).size, configs.length, 'distinct PHAROS_WORKER_NAMEs')
    const peerIds = await Promise.all(configs.map(peerIdOf))
    assert.equal(new Set(peerIds).size, configs.length, 'distinct derived peer IDs')
  })

  it('has each worker announce TCP and WebSocket addresses that its published ports carry to its listeners', () => {
    const hostPorts = new Set<number>()
    for (const { name, service, env } of workerEnvs) {
      const config = loads(env, name)
      const ports = (service.ports ?? []).map(parsePort)
      for (const port of ports) {
        assert.ok(!hostPorts.has(port.host), `host port ${port.host} published twice`)
        hostPorts.add(port.host)
      }
      const addrs = config.announce.map(announced)
      assert.ok(addrs.some((addr) => !addr.ws) && addrs.some((addr) => addr.ws), `${name} announces a TCP and a WebSocket address`)
      for (const addr of addrs) {
        const listener = addr.ws ? config.p2pWsPort : config.p2pTcpPort
        const published = ports.find((port) => port.host === addr.port)
        assert.ok(published !== undefined, `${name} announces port ${addr.port}, which it does not publish`)
        assert.equal(published.container, listener, `${name}: host port ${addr.port} must reach the ${addr.ws ? 'WebSocket' : 'TCP'} listener`)
        assert.ok(published.hostIp === undefined || published.hostIp === '0.0.0.0', `${name}: p2p port ${addr.port} is published on every interface`)
      }
      const http = ports.find((port) => port.container === config.httpPort)
      assert.ok(http !== undefined, `${name} publishes its HTTP port`)
    }
  })

  it('stops a worker only after its drain deadline', () => {
    for (const { name, service, env } of workerEnvs) {
      assert.ok(seconds(service.stop_grace_period ?? '10s') * 1000 > loads(env, name).shutdownTimeoutMs, `${name}: stop_grace_period outlasts PHAROS_SHUTDOWN_TIMEOUT_MS`)
    }
  })

  it('mounts only files that exist, and is the README quick start', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const mount of bindMounts(service)) assert.ok(existsSync(join(ROOT, mount.source)), `${name} mounts ${mount.source}, which does not exist`)
    }
    assert.match(readRepoFile('README.md'), /^docker compose up\b/m)
  })

  it('has Prometheus scrape every worker\'s /metrics with the rules loaded', () => {
    assert.ok(pharosJob !== undefined, 'scrape job "pharos"')
    const targets = pharosJob.static_configs.flatMap((config) => config.targets).sort()
    assert.deepEqual(targets, workerEnvs.map(({ name, env }) => `${name}:${loads(env, name).httpPort}`).sort())
    assert.equal(pharosJob.metrics_path ?? '/metrics', '/metrics')
    const prometheus = compose.services.prometheus as ComposeService
    const mount = bindMounts(prometheus).find((m) => m.source === 'deploy/prometheus')
    assert.ok(mount !== undefined, 'deploy/prometheus is mounted')
    assert.ok(prometheus.command?.includes(`--config.file=${mount.target}/prometheus.yml`))
    assert.deepEqual(prometheusConfig.rule_files, ['rules/*.yml'])
  })

  it('runs Alertmanager on its config, and Prometheus sends it the alerts', () => {
    const alertmanager = compose.services.alertmanager
    assert.ok(alertmanager !== undefined, 'an alertmanager service')
    assert.match(alertmanager.image ?? '', /^prom\/alertmanager:v0\.\d+\.\d+$/)
    const mount = bindMounts(alertmanager).find((m) => m.source === dirname(ALERTMANAGER_FILE))
    assert.ok(mount !== undefined, `${dirname(ALERTMANAGER_FILE)} is mounted`)
    assert.ok(alertmanager.command?.includes(`--config.file=${mount.target}/alertmanager.yml`), 'it reads the mounted config')
    const storage = alertmanager.command?.find((arg) => arg.startsWith('--storage.path='))?.slice('--storage.path='.length)
    assert.ok(storage !== undefined && alertmanager.volumes?.some((volume) => volume.endsWith(`:${storage}`) && compose.volumes?.[volume.split(':')[0] ?? ''] !== undefined), 'silences and notification state on a named volume')
    assert.deepEqual((alertmanager.ports ?? []).map(parsePort), [{ hostIp: '127.0.0.1', host: 9093, container: 9093 }], 'published on loopback only')
    const alerting = (readYaml<{ alerting?: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> } }>('deploy/prometheus/prometheus.yml')).alerting
    assert.deepEqual(alerting?.alertmanagers.flatMap((am) => am.static_configs.flatMap((config) => config.targets)), ['alertmanager:9093'], 'Prometheus sends alerts to the compose Alertmanager')
    const prometheusDepends = compose.services.prometheus?.depends_on
    assert.ok(Array.isArray(prometheusDepends) && prometheusDepends.includes('alertmanager'))
    assert.match(readRepoFile('.gitignore'), /^deploy\/alertmanager\/secrets\/$/m, 'the receivers\' credential files are git-ignored')
  })

  it('has Grafana read Prometheus and load the dashboards it is given', () => {
    const datasources = readYaml<{ datasources: Array<{ uid: string, url: string, type: string }> }>('deploy/grafana/provisioning/datasources/prometheus.yml').datasources
    const url = new URL(datasources[0]?.url ?? '')
    assert.ok(compose.services[url.hostname] !== undefined && url.hostname === 'prometheus')
    assert.equal(url.port, '9090')
    const grafana = compose.services.grafana as ComposeService
    const mounts = bindMounts(grafana)
    assert.ok(mounts.some((m) => m.source === 'deploy/grafana/provisioning' && m.target === '/etc/grafana/provisioning'))
    const provider = readYaml<{ providers: Array<{ options: { path: string } }> }>('deploy/grafana/provisioning/dashboards/pharos.yml').providers[0]
    const dashboards = mounts.find((m) => m.target === provider?.options.path)
    assert.ok(dashboards?.source === 'deploy/grafana/dashboards', 'the provider reads the mounted dashboards folder')
    const home = serviceEnvironment(grafana).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? ''
    assert.ok(existsSync(join(ROOT, dashboards.source, relative(dashboards.target, home))), 'the home dashboard is one of them')
  })
})

// ---------------------------------------------------------------- Prometheus and Grafana

const ruleFiles = RULE_FILES.map((file) => ({ file, rules: readYaml<RuleFile>(file) }))
const rules = ruleFiles.flatMap(({ rules: file }) => file.groups.flatMap((group) => group.rules))
const recorded = new Set(rules.flatMap((rule) => rule.record === undefined ? [] : [rule.record]))
const dashboards = DASHBOARD_FILES.map((file) => ({ file, dashboard: JSON.parse(readRepoFile(file)) as GrafanaDashboard }))

describe('Prometheus config and alert rules', () => {
  it('pass promtool check config and check rules', async () => {
    assert.match(await promtool('check', 'config', 'deploy/prometheus/prometheus.yml'), /SUCCESS/)
    assert.match(await promtool('check', 'rules', ...RULE_FILES), /SUCCESS/)
  })

  it('fire on synthetic series as their unit tests expect (promtool test rules)', async () => {
    assert.ok(RULE_TEST_FILES.length >= 2)
    const output = await promtool('test', 'rules', ...RULE_TEST_FILES)
    assert.equal(output.match(/SUCCESS/g)?.length, RULE_TEST_FILES.length, output)
  })

  it('each fire in some promtool test, with the labels and annotations the test expects', () => {
    const tests = RULE_TEST_FILES.flatMap((file) => readYaml<{ rule_files: string[], tests: Array<{ alert_rule_test?: Array<{ alertname: string, exp_alerts: unknown[] }> }> }>(file).tests.map((test) => ({ file, test })))
    const fired = new Set(tests.flatMap(({ test }) => (test.alert_rule_test ?? []).filter((check) => check.exp_alerts.length > 0).map((check) => check.alertname)))
    const untested = rules.flatMap((rule) => rule.alert === undefined || fired.has(rule.alert) ? [] : [rule.alert])
    assert.deepEqual(untested, [], 'alerts no test in deploy/prometheus/tests expects to fire')
    for (const file of RULE_TEST_FILES) {
      const loaded = readYaml<{ rule_files: string[] }>(file).rule_files.map((rule) => normalize(join(dirname(file), rule))).sort()
      assert.deepEqual(loaded, [...RULE_FILES].sort(), `${file} loads every rule file`)
    }
  })

  it('cover what issues 7 and 20 ask for, each with a severity, summary, description and a runbook_url section', () => {
    const alerts = new Map(rules.flatMap((rule) => rule.alert === undefined ? [] : [[rule.alert, rule] as const]))
    for (const name of ['PharosWorkerDown', 'PharosWorkerNotReady', 'PharosPinQueueGrowing', 'PharosPinFailures', 'PharosRedisErrors', 'PharosPostgresErrors', 'PharosConnectionsNearLimit', 'PharosEventLoopLag', 'PharosStorageNearQuota']) {
      assert.ok(alerts.has(name), `alert ${name}`)
    }
    // Issue 20: 5xx and latency on /pins and /ipfs, audit failures, failed repairs, relay
    // reservations near the limit, GC failures, memory near the container limit.
    const wanted: Record<string, RegExp> = {
      PharosPinningApiErrors: /pharos_http_request_duration_seconds_count\{[^}]*route=~"\/pins[^}]*status="5xx"/,
      PharosGatewayErrors: /pharos_http_request_duration_seconds_count\{[^}]*route=~"\/ipfs[^}]*status="5xx"/,
      PharosPinningApiSlow: /histogram_quantile\(0\.99, [^\n]*pharos_http_request_duration_seconds_bucket\{[^}]*route=~"\/pins/,
      PharosGatewaySlow: /histogram_quantile\(0\.99, [^\n]*pharos_http_response_start_seconds_bucket\{[^}]*route=~"\/ipfs/,
      PharosAuditFoundBadBlocks: /pharos_audit_failures_total/,
      PharosAuditRoundsFailing: /pharos_audit_rounds_total\{[^}]*outcome="failed"/,
      PharosAuditRepairsFailing: /pharos_audit_repairs_total\{[^}]*outcome="failed"/,
      PharosRelayReservationsNearLimit: /pharos_relay_reservations\{[^}]*\} \/ \(pharos_relay_reservations_limit/,
      PharosGcFailing: /pharos_gc_runs_total\{[^}]*outcome="failed"/,
      PharosMemoryNearLimit: /process_resident_memory_bytes\{[^}]*\} \/ \(pharos_memory_limit_bytes/
    }
    for (const [name, pattern] of Object.entries(wanted)) assert.match(alerts.get(name)?.expr ?? `no alert ${name}`, pattern, name)
    const operations = readRepoFile('docs/operations.md')
    const anchors = new Set([...operations.matchAll(/^#+\s+(.+)$/gm)].map((m) => (m[1] ?? '').trim().toLowerCase().replace(/[^\w\s-]/g, '').replace(/\s+/g, '-')))
    for (const [name, rule] of alerts) {
      assert.match(rule.labels?.severity ?? '', /^(critical|warning|info)$/, `${name} severity`)
      assert.ok((rule.annotations?.summary ?? '') !== '' && (rule.annotations?.description ?? '') !== '', `${name} summary and description`)
      const anchor = /^docs\/operations\.md#(.+)$/.exec(rule.annotations?.runbook_url ?? '')?.[1]
      assert.ok(anchor !== undefined && anchors.has(anchor), `${name}: runbook_url points at a section of docs/operations.md`)
      assert.equal(anchor, name.toLowerCase(), `${name}: its runbook_url is its own section`)
    }
  })

  it('select only the scrape job that exists', () => {
    const exprs = [...rules.map((rule) => rule.expr), ...dashboards.flatMap(({ dashboard }) => dashboardQueries(dashboard).map((query) => query.expr))]
    const jobs = new Set(exprs.flatMap((expr) => [...expr.matchAll(/\bjob\s*=\s*"([^"$]*)"/g)].map((m) => m[1] ?? '')))
    assert.deepEqual([...jobs], ['pharos'])
    assert.ok(pharosJob !== undefined)
  })
})

describe('Alertmanager config', () => {
  const text = readRepoFile(ALERTMANAGER_FILE)
  interface AlertmanagerConfig {
    route: { receiver: string, routes?: Array<{ receiver: string, matchers?: string[] }> }
    inhibit_rules: Array<{ source_matchers: string[], target_matchers: string[], equal: string[] }>
    receivers: Array<{ name: string, [integration: string]: unknown }>
  }
  const config = yaml.load(text) as AlertmanagerConfig
  const examples = yaml.load(withExamples(text)) as AlertmanagerConfig
  const alertNames = rules.flatMap((rule) => rule.alert === undefined ? [] : [rule.alert])

  it('passes amtool check-config as it is and with every example receiver taken in', async () => {
    assert.match(await amtool('check-config', ALERTMANAGER_FILE), /SUCCESS/)
    const dir = mkdtempSync(join(tmpdir(), 'pharos-alertmanager-'))
    writeFileSync(join(dir, 'alertmanager.yml'), withExamples(text))
    assert.match(await amtool('check-config', join(dir, 'alertmanager.yml')), /SUCCESS/)
    const integrations = examples.receivers.flatMap((receiver) => Object.keys(receiver).filter((key) => key.endsWith('_configs')))
    assert.ok(integrations.length >= 3, `example integrations: ${integrations.join(', ')}`)
    assert.deepEqual(config.receivers.flatMap((receiver) => Object.keys(receiver).filter((key) => key !== 'name')), [], 'as shipped, the receivers send nowhere')
  })

  it('routes every severity the rules use to a receiver of its own', () => {
    const severities = new Set(rules.flatMap((rule) => rule.alert === undefined ? [] : [rule.labels?.severity ?? '']))
    for (const severity of severities) {
      const route = config.route.routes?.find((r) => r.matchers?.includes(`severity="${severity}"`))
      assert.ok(route !== undefined && route.receiver !== config.route.receiver, `severity ${severity} has its own route`)
    }
  })

  it('inhibits only with and for alerts that exist, on labels both carry', () => {
    assert.ok(config.inhibit_rules.length >= 5)
    for (const rule of config.inhibit_rules) {
      for (const matcher of [...rule.source_matchers, ...rule.target_matchers]) {
        const match = /^alertname(=|=~|!=)"([^"]+)"$/.exec(matcher)
        if (match === null) { assert.match(matcher, /^(severity|check)="[a-z]+"$/, `matcher understood: ${matcher}`); continue }
        const names = match[1] === '=~' ? match[2]?.split('|') ?? [] : [match[2] ?? '']
        for (const name of names) {
          if (name === 'Pharos.+') continue
          assert.ok(alertNames.includes(name), `${matcher}: no alert ${name} in deploy/prometheus/rules`)
        }
      }
      for (const label of rule.equal) assert.ok(['alertname', 'job', 'instance'].includes(label), `equal on ${label}: a label every alert has or lacks alike`)
    }
    const workerDown = config.inhibit_rules.find((rule) => rule.source_matchers.includes('alertname="PharosWorkerDown"'))
    assert.deepEqual(workerDown?.equal, ['job', 'instance'], 'a worker down holds back that worker\'s alerts only')
  })
})

describe('Grafana dashboards', () => {
  it('are valid PromQL (promtool parses every query)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pharos-dashboards-'))
    const file = join(dir, 'queries.yml')
    const queries = dashboards.flatMap(({ dashboard }) => dashboardQueries(dashboard))
    writeFileSync(file, yaml.dump({ groups: [{ name: 'dashboards', rules: queries.map((query, i) => ({ record: `dashboard:query_${i}`, expr: substituteGrafanaVariables(query.expr) })) }] }))
    assert.match(await promtool('check', 'rules', file), new RegExp(`SUCCESS: ${queries.length} rules found`))
  })

  it('read the provisioned Prometheus through a datasource variable, and have unique uids', () => {
    const uids = dashboards.map(({ dashboard }) => dashboard.uid)
    assert.equal(new Set(uids).size, uids.length)
    for (const { file, dashboard } of dashboards) {
      assert.ok(dashboard.templating?.list.some((variable) => variable.type === 'datasource' && variable.name === 'datasource'), `${file}: $datasource`)
      const visit = (panels: GrafanaDashboard['panels']): void => {
        for (const panel of panels) {
          if (panel.type !== 'row') assert.equal(panel.datasource?.uid, '${datasource}', `${file}: panel "${panel.title}"`)
          for (const target of panel.targets ?? []) assert.equal(target.datasource?.uid ?? panel.datasource?.uid, '${datasource}')
          visit(panel.panels ?? [])
        }
      }
      visit(dashboard.panels)
    }
  })

  it('give the fleet overview every view issue 7 asks for', () => {
    const overview = dashboards.find(({ dashboard }) => dashboard.uid === 'pharos-fleet')
    assert.ok(overview !== undefined)
    const exprs = dashboardQueries(overview.dashboard).map((query) => query.expr)
    const wanted: Record<string, RegExp> = {
      workers: /pharos_fleet_workers/,
      'connections by transport': /by \(transport\) \(pharos_connections\{/,
      'overlay view sizes': /pharos_overlay_view_size/,
      'gossip rates': /rate\(pharos_overlay_messages_total/,
      'gossip duplicates': /pharos_overlay_events_total\{[^}]*event="duplicate"/,
      ingest: /pharos_log_entries_total/,
      'pin pipeline': /pharos_pin_attempts_total/,
      'queue depth': /pharos_pin_queue_depth/,
      'storage bytes': /pharos_block_bytes_stored/,
      GC: /pharos_gc_runs_total/,
      bans: /pharos_banned_peers/,
      'relay reservations': /pharos_relay_reservations\{/,
      'HTTP latency': /histogram_quantile\(0\.\d+, sum by \(le\) \(rate\(pharos_http_request_duration_seconds_bucket/,
      'event-loop lag': /nodejs_eventloop_lag_p99_seconds/
    }
    for (const [view, pattern] of Object.entries(wanted)) assert.ok(exprs.some((expr) => pattern.test(expr)), `fleet overview: ${view}`)
  })

  it('show every pharos_audit_* metric, and what the issue-20 alerts read, on both dashboards (issue 20)', () => {
    const auditMetrics = [...readRepoFile('services/beacon/src/audit/audit-metrics.ts').matchAll(/name: '(pharos_audit_\w+)'/g)].map((m) => m[1] ?? '')
    assert.ok(auditMetrics.length >= 7, `audit metrics: ${auditMetrics.join(', ')}`)
    const alertReads = ['pharos_http_response_start_seconds', 'pharos_relay_reservations_limit', 'pharos_memory_limit_bytes']
    for (const { file, dashboard } of dashboards) {
      const names = new Set(dashboardQueries(dashboard).flatMap((query) => promqlMetricNames(query.expr)).map((name) => name.replace(/_(bucket|sum|count)$/, '')))
      for (const metric of [...auditMetrics, ...alertReads]) assert.ok(names.has(metric), `${file}: no panel reads ${metric}`)
    }
  })

  it('make the worker dashboard a drill-down: every series it selects is of $instance', () => {
    const worker = dashboards.find(({ dashboard }) => dashboard.uid === 'pharos-worker')
    assert.ok(worker !== undefined)
    assert.ok(worker.dashboard.templating?.list.some((variable) => variable.name === 'instance' && variable.type === 'query'))
    const panels = dashboardQueries(worker.dashboard).filter((query) => query.where.startsWith('panel'))
    assert.ok(panels.length > 20)
    for (const { where, expr } of panels) {
      for (const name of promqlMetricNames(expr)) {
        const uses = [...expr.matchAll(new RegExp(`\\b${name}\\b(?!\\s*\\()(\\{[^}]*\\})?`, 'g'))]
        for (const use of uses) assert.match(use[1] ?? '', /instance="\$instance"/, `${where}: ${name} without instance="$instance"`)
      }
    }
  })
})

// -------------------------------------------------------------------------------- Helm

interface ReadmeInstall { releaseName: string, sets: Array<[string, string]> }

/** The `helm install` command of the chart README, with each `$(…)` given a stand-in. */
function readmeInstall (): ReadmeInstall {
  const readme = readFileSync(join(CHART, 'README.md'), 'utf8')
  const block = /```sh\n(helm install[^`]*)```/.exec(readme)?.[1]
  assert.ok(block !== undefined, 'the chart README has a helm install command')
  const command = block.replace(/\\\n\s*/g, ' ')
  const release = /^helm install (\S+) \.\/helm\/pharos/.exec(command)
  assert.ok(release !== null)
  const sets = [...command.matchAll(/--set ([\w.]+)=("[^"]*"|'[^']*'|\S+)/g)].map((m): [string, string] => {
    let value = m[2] ?? ''
    if (value.startsWith('\'') || value.startsWith('"')) value = value.slice(1, -1)
    value = standIn(value)
    assert.doesNotMatch(value, /\$\(/, `a stand-in for ${value}`)
    return [m[1] ?? '', value]
  })
  return { releaseName: release[1] ?? '', sets }
}

function render (extra: Array<[string, string]> = []): ChartRender {
  const install = readmeInstall()
  const values = chartValues(CHART)
  for (const [path, value] of [...install.sets, ...extra]) setValue(values, path, value)
  return renderChart(CHART, values, { releaseName: install.releaseName, namespace: 'pharos' })
}

function find (render: ChartRender, kind: string, name?: string): Manifest {
  const manifest = render.manifests.find((m) => m.kind === kind && (name === undefined || m.metadata.name === name))
  assert.ok(manifest !== undefined, `${kind} ${name ?? ''} rendered`)
  return manifest
}

interface Container {
  env?: Array<{ name: string, value?: string, valueFrom?: { fieldRef?: { fieldPath: string }, secretKeyRef?: { name: string, key: string } } }>
  envFrom?: Array<{ configMapRef?: { name: string }, secretRef?: { name: string } }>
  ports: Array<{ name: string, containerPort: number }>
  startupProbe?: { httpGet: { path: string, port: string } }
  livenessProbe?: { httpGet: { path: string, port: string } }
  readinessProbe?: { httpGet: { path: string, port: string } }
  resources?: { requests?: Record<string, string>, limits?: Record<string, string> }
}
interface PodSpec { containers: Container[], terminationGracePeriodSeconds: number, securityContext?: { runAsNonRoot?: boolean }, affinity?: Record<string, unknown> }

/** Most workers a render can run: the HPA's maxReplicas, or the StatefulSet's replicas without one. */
function maxWorkers (r: ChartRender): number {
  const hpa = r.manifests.find((m) => m.kind === 'HorizontalPodAutoscaler')?.spec as { maxReplicas: number } | undefined
  if (hpa !== undefined) return hpa.maxReplicas
  const replicas = (find(r, 'StatefulSet').spec as { replicas?: number }).replicas
  assert.ok(typeof replicas === 'number' && replicas > 0, 'without an HPA the StatefulSet sets replicas')
  return replicas
}

const AUTOSCALING_ON: Array<[string, string]> = [['autoscaling.enabled', 'true']]

function statefulSet (r: ChartRender): { manifest: Manifest, pod: PodSpec, labels: Record<string, string> } {
  const manifest = find(r, 'StatefulSet')
  const template = (manifest.spec as { template: { metadata: { labels: Record<string, string> }, spec: PodSpec } }).template
  return { manifest, pod: template.spec, labels: template.metadata.labels }
}

/** The environment the worker in pod `podName` sees, as the kubelet builds it. */
function podEnv (r: ChartRender, podName: string, hostIp = '192.0.2.10'): Record<string, string> {
  const { pod } = statefulSet(r)
  const container = pod.containers[0] as Container
  const env: Record<string, string> = { ...imageEnv }
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef !== undefined) Object.assign(env, find(r, 'ConfigMap', source.configMapRef.name).data)
    if (source.secretRef !== undefined) Object.assign(env, find(r, 'Secret', source.secretRef.name).stringData ?? {})
  }
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) {
      env[entry.name] = entry.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole)
    } else if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.name') {
      env[entry.name] = podName
    } else if (entry.valueFrom?.fieldRef?.fieldPath === 'status.hostIP') {
      env[entry.name] = hostIp
    } else {
      assert.fail(`env ${entry.name}: source not modelled by this test`)
    }
  }
  return env
}

/** Env names a container sets that are not config keys must only feed $(NAME) of others. */
function containerEnvNames (r: ChartRender): string[] {
  const container = statefulSet(r).pod.containers[0] as Container
  const referenced = new Set((container.env ?? []).flatMap((entry) => [...(entry.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) => m[1] ?? '')))
  return (container.env ?? []).map((entry) => entry.name).filter((name) => !referenced.has(name) || CONFIG_KEYS.has(name))
}

describe('helm/pharos', () => {
  const templates = readdirSync(join(CHART, 'templates')).map((file) => ({ file, text: readFileSync(join(CHART, 'templates', file), 'utf8') }))

  it('uses only .Values paths that values.yaml has', () => {
    const values = chartValues(CHART)
    const missing: string[] = []
    for (const { file, text } of templates) {
      for (const match of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        let node: unknown = values
        for (const key of (match[1] ?? '').slice(1).split('.')) {
          if (node === null || typeof node !== 'object' || !Object.prototype.hasOwnProperty.call(node, key)) { missing.push(`${file}: .Values${match[1] ?? ''}`); break }
          node = (node as Record<string, unknown>)[key]
        }
      }
    }
    assert.deepEqual(missing, [])
  })

  it('has balanced actions and includes only templates it defines', () => {
    const defined = definedTemplateNames(CHART)
    for (const { file, text } of templates) {
      assert.equal(text.split('{{').length, text.split('}}').length, `${file}: every {{ has its }}`)
      for (const match of text.matchAll(/include\s+"([^"]+)"/g)) assert.ok(defined.has(match[1] ?? ''), `${file}: include "${match[1] ?? ''}" is not defined`)
      for (const match of text.matchAll(/include\s+\(print \$\.Template\.BasePath "\/([^"]+)"\)/g)) assert.ok(existsSync(join(CHART, 'templates', match[1] ?? '')), `${file}: includes templates/${match[1] ?? ''}`)
    }
  })

  it('keys config, secretConfig and secretKeyRefs by worker config keys', () => {
    const values = chartValues(CHART) as { config: Record<string, unknown>, secretConfig: Record<string, unknown>, secretKeyRefs: Record<string, unknown> }
    assertConfigKeys(Object.keys(values.config), 'values.yaml config')
    assertConfigKeys(Object.keys(values.secretConfig), 'values.yaml secretConfig')
    assertConfigKeys(Object.keys(values.secretKeyRefs), 'values.yaml secretKeyRefs')
    for (const key of Object.keys(values.secretConfig)) assert.ok(SECRET_KEYS.has(key), `secretConfig.${key}: not a secret key of the schema; put it under config`)
  })

  it('renders the README install command into a fleet whose every pod loads its config, with a peer ID of its own', async () => {
    for (const extra of [[], AUTOSCALING_ON]) {
      const r = render(extra)
      const kinds = new Set(r.manifests.map((m) => m.kind))
      for (const kind of ['StatefulSet', 'Service', 'ConfigMap', 'Secret', 'PodDisruptionBudget', 'NetworkPolicy']) assert.ok(kinds.has(kind), `renders a ${kind}`)
      assertConfigKeys(Object.keys(find(r, 'ConfigMap').data ?? {}), 'ConfigMap data')
      assertConfigKeys(Object.keys(find(r, 'Secret').stringData ?? {}), 'Secret stringData')
      assertConfigKeys(containerEnvNames(r), 'container env')
      const { manifest } = statefulSet(r)
      const workers = maxWorkers(r)
      const peerIds = new Set<string>()
      for (let ordinal = 0; ordinal < workers; ordinal++) {
        const podName = `${manifest.metadata.name}-${ordinal}`
        const env = podEnv(r, podName)
        for (const key of FLEET_KEYS) assert.ok((env[key] ?? '') !== '', `${podName}: ${key}`)
        const config = loads(env, podName)
        assert.equal(config.workerName, podName, 'PHAROS_WORKER_NAME is the pod name')
        peerIds.add(await peerIdOf(config))
      }
      assert.equal(peerIds.size, workers, 'a distinct peer ID per worker')
    }
  })

  it('probes /healthz and /readyz on the HTTP port, and drains within the grace period', () => {
    const r = render()
    const { pod } = statefulSet(r)
    const container = pod.containers[0] as Container
    const config = loads(podEnv(r, 'pharos-0'), 'pod')
    assert.equal(container.livenessProbe?.httpGet.path, '/healthz')
    assert.equal(container.startupProbe?.httpGet.path, '/healthz')
    assert.equal(container.readinessProbe?.httpGet.path, '/readyz')
    for (const probe of [container.livenessProbe, container.startupProbe, container.readinessProbe]) {
      assert.equal(container.ports.find((port) => port.name === probe?.httpGet.port)?.containerPort, config.httpPort)
    }
    assert.deepEqual(container.ports.map((port) => port.containerPort).sort(), [config.p2pTcpPort, config.p2pWsPort, config.httpPort].sort())
    assert.ok(container.resources?.requests?.cpu !== undefined && container.resources.limits?.memory !== undefined, 'resources set')
    assert.equal(pod.securityContext?.runAsNonRoot, true)
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > config.shutdownTimeoutMs, 'the grace period outlasts PHAROS_SHUTDOWN_TIMEOUT_MS')
  })

  it('LoadBalancer mode: a Service per worker, and each worker announces the name of its own Service', () => {
    for (const extra of [[], AUTOSCALING_ON]) lbMode(render(extra))
  })

  function lbMode (r: ChartRender): void {
    const { manifest, labels } = statefulSet(r)
    const p2p = r.manifests.filter((m) => m.kind === 'Service' && m.metadata.labels?.['app.kubernetes.io/component'] === 'p2p')
    assert.equal(p2p.length, maxWorkers(r), 'one p2p Service per possible worker')
    for (let ordinal = 0; ordinal < maxWorkers(r); ordinal++) {
      const podName = `${manifest.metadata.name}-${ordinal}`
      const config = loads(podEnv(r, podName), podName)
      const service = p2p.find((m) => (m.spec as { selector: Record<string, string> }).selector['statefulset.kubernetes.io/pod-name'] === podName)
      assert.ok(service !== undefined, `a Service selects ${podName}`)
      const spec = service.spec as { type: string, externalTrafficPolicy: string, selector: Record<string, string>, ports: Array<{ name: string, port: number, targetPort: string }> }
      assert.equal(spec.type, 'LoadBalancer')
      assert.equal(spec.externalTrafficPolicy, 'Local', 'peers\' source IPs reach the per-IP limits')
      for (const [key, value] of Object.entries(spec.selector)) if (key !== 'statefulset.kubernetes.io/pod-name') assert.equal(labels[key], value)
      const dnsName = service.metadata.annotations?.['external-dns.alpha.kubernetes.io/hostname']
      const addrs = config.announce.map(announced)
      assert.ok(addrs.some((addr) => !addr.ws) && addrs.some((addr) => addr.ws))
      for (const addr of addrs) {
        assert.equal(addr.host, dnsName, `${podName} announces the name of its Service`)
        const port = spec.ports.find((p) => p.port === addr.port)
        assert.equal(port?.targetPort, addr.ws ? 'p2p-ws' : 'p2p-tcp', `${podName}: announced port ${addr.port} reaches the right listener`)
      }
    }
  }

  it('NodePort mode: one Service, one worker per node, each announcing its node\'s address and the node ports', () => {
    const r = render([['p2p.service.type', 'NodePort']])
    const services = r.manifests.filter((m) => m.kind === 'Service' && m.metadata.labels?.['app.kubernetes.io/component'] === 'p2p')
    assert.equal(services.length, 1)
    const spec = services[0]?.spec as { type: string, externalTrafficPolicy: string, ports: Array<{ nodePort: number, targetPort: string }> }
    assert.equal(spec.type, 'NodePort')
    assert.equal(spec.externalTrafficPolicy, 'Local', 'a node\'s port reaches only the worker on that node')
    const { pod, labels } = statefulSet(r)
    const antiAffinity = (pod.affinity as { podAntiAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: Array<{ topologyKey: string, labelSelector: { matchLabels: Record<string, string> } }> } } | undefined)
      ?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0]
    assert.equal(antiAffinity?.topologyKey, 'kubernetes.io/hostname', 'required anti-affinity: one worker per node')
    assert.ok(Object.entries(antiAffinity.labelSelector.matchLabels).every(([key, value]) => labels[key] === value), 'the anti-affinity selects the workers')
    const config = loads(podEnv(r, 'pharos-0', '198.51.100.7'), 'pod')
    for (const addr of config.announce.map(announced)) {
      assert.equal(addr.host, '198.51.100.7')
      assert.equal(spec.ports.find((port) => port.nodePort === addr.port)?.targetPort, addr.ws ? 'p2p-ws' : 'p2p-tcp')
    }
  })

  it('refuses to render what could not start a fleet', () => {
    assert.throws(() => render([['secretConfig.DATABASE_URL', '']]), /secretConfig\.DATABASE_URL is required/)
    assert.throws(() => render([['secretConfig.REDIS_URL', '']]), /secretConfig\.REDIS_URL is required/)
    assert.throws(() => render([['secretConfig.PHAROS_FLEET_SECRET', 'short']]), /at least 32 characters/)
    assert.throws(() => render([['config.PHAROS_WORKER_NAME', 'x']]), /set per pod/)
    assert.throws(() => render([['p2p.announce.domain', '']]), /p2p\.announce\.domain is required/)
    assert.doesNotThrow(() => render([['secretConfig.DATABASE_URL', ''], ['secretKeyRefs.DATABASE_URL.name', 'pg-app'], ['secretKeyRefs.DATABASE_URL.key', 'uri']]))
  })

  it('scales, disrupts and admits traffic for the workers it runs', () => {
    const r = render()
    const { manifest, labels } = statefulSet(r)
    // Autoscaling is off by default (issue 20): replicaCount workers, no HPA.
    assert.equal((manifest.spec as { replicas?: number }).replicas, (chartValues(CHART) as { replicaCount: number }).replicaCount)
    assert.ok(!r.manifests.some((m) => m.kind === 'HorizontalPodAutoscaler'), 'no HPA by default')
    const scaled = render(AUTOSCALING_ON)
    assert.equal((statefulSet(scaled).manifest.spec as { replicas?: number }).replicas, undefined, 'the HPA owns replicas')
    const hpa = find(scaled, 'HorizontalPodAutoscaler').spec as { scaleTargetRef: { kind: string, name: string } }
    assert.deepEqual(hpa.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: manifest.metadata.name })
    const selects = (selector: Record<string, string>): boolean => Object.entries(selector).every(([key, value]) => labels[key] === value)
    assert.ok(selects((find(r, 'PodDisruptionBudget').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels))
    const policy = find(r, 'NetworkPolicy').spec as { podSelector: { matchLabels: Record<string, string> }, ingress: Array<{ ports: Array<{ port: string }>, from?: unknown[] }> }
    assert.ok(selects(policy.podSelector.matchLabels))
    const p2pRule = policy.ingress.find((rule) => rule.ports.some((port) => port.port === 'p2p-tcp'))
    assert.ok(p2pRule !== undefined && p2pRule.from === undefined && p2pRule.ports.some((port) => port.port === 'p2p-ws'), 'p2p ports open to every peer')
    const httpRule = policy.ingress.find((rule) => rule.ports.some((port) => port.port === 'http'))
    assert.ok(httpRule?.from !== undefined, 'the HTTP port only from networkPolicy.httpFrom')
    const admin = find(r, 'Service', `${manifest.metadata.name}-admin`).spec as { type: string, selector: Record<string, string>, ports: Array<{ targetPort: string }> }
    assert.equal(admin.type, 'ClusterIP')
    assert.ok(selects(admin.selector) && admin.ports[0]?.targetPort === 'http')
  })

  it('ServiceMonitor and PrometheusRule: job "pharos" on /metrics, and the alerts of deploy/prometheus', () => {
    const r = render([['serviceMonitor.enabled', 'true'], ['prometheusRule.enabled', 'true'], ['prometheusRule.storageQuotaBytes', '107374182400']])
    const { manifest } = statefulSet(r)
    const monitor = find(r, 'ServiceMonitor').spec as { jobLabel: string, selector: { matchLabels: Record<string, string> }, endpoints: Array<{ port: string, path: string }> }
    const admin = find(r, 'Service', `${manifest.metadata.name}-admin`)
    assert.ok(Object.entries(monitor.selector.matchLabels).every(([key, value]) => admin.metadata.labels?.[key] === value), 'selects the admin Service')
    assert.equal(admin.metadata.labels?.[monitor.jobLabel], pharosJob?.job_name, 'job label as in deploy/prometheus/prometheus.yml')
    assert.equal(monitor.endpoints[0]?.path, pharosJob?.metrics_path)
    assert.ok((admin.spec as { ports: Array<{ name: string }> }).ports.some((port) => port.name === monitor.endpoints[0]?.port))
    assert.equal(readFileSync(join(CHART, 'files/pharos-alerts.yml'), 'utf8'), readRepoFile(ALERTS_FILE), 'helm/pharos/files/pharos-alerts.yml is a copy of ' + ALERTS_FILE)
    const groups = (find(r, 'PrometheusRule').spec as unknown as RuleFile).groups
    assert.deepEqual(groups.slice(0, -1), readYaml<RuleFile>(ALERTS_FILE).groups)
    const quota = groups.at(-1)?.rules[0]
    assert.ok(quota?.record !== undefined && recorded.has(quota.record), 'the quota rule records the name the alert reads')
    assert.equal(quota.expr, 'vector(107374182400)')
  })
  it('values.schema.json accepts values.yaml and the README install, and rejects a typo at any depth (issue 20)', () => {
    assert.doesNotThrow(() => { validateChartValues(CHART, chartValues(CHART)) })
    assert.doesNotThrow(() => render())
    const rejected: Array<[string, string, RegExp]> = [
      ['autoscalling.enabled', 'true', /\(root\): additional property autoscalling is not allowed/],
      ['autoscaling.maxReplica', '20', /autoscaling: additional property maxReplica is not allowed/],
      ['p2p.service.typ', 'NodePort', /p2p\.service: additional property typ is not allowed/],
      ['probes.liveness.periodSecond', '5', /probes\.liveness: additional property periodSecond is not allowed/],
      ['config.PHAROS_MAX_CONECTIONS', '20000', /config: additional property PHAROS_MAX_CONECTIONS is not allowed/],
      ['config.DATABASE_URL', 'postgres://pharos@db/pharos', /config: additional property DATABASE_URL is not allowed/],
      ['secretConfig.PHAROS_FLEET_SECRETS', 'x'.repeat(40), /secretConfig: additional property PHAROS_FLEET_SECRETS is not allowed/],
      ['secretKeyRefs.DATABASE_URL.nmae', 'pg-app', /secretKeyRefs\.DATABASE_URL: additional property nmae is not allowed/],
      ['alertmanager.enabeld', 'true', /alertmanager: additional property enabeld is not allowed/],
      ['grafanaDashboards.lable', 'x', /grafanaDashboards: additional property lable is not allowed/],
      ['replicaCount', 'three', /replicaCount: must be integer/],
      ['p2p.service.type', 'ClusterIP', /p2p\.service\.type: must be equal to one of the allowed values/]
    ]
    for (const [path, value, message] of rejected) {
      assert.throws(() => render([[path, value]]), (err: unknown) => err instanceof ChartValuesError && message.test(err.message), `--set ${path}=${value} is refused`)
    }
  })

  it('values.schema.json closes every object it describes, and lists the worker config keys of the schema', () => {
    const valuesSchema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Record<string, unknown>
    // Open on purpose: label and annotation maps, Kubernetes' own types below their first
    // level (the API server checks those), and alertmanager.yml (Alertmanager checks it).
    const open = new Set(['#/definitions/stringMap', '#/definitions/k8sObject', '#/properties/alertmanager/properties/config'])
    const visit = (node: unknown, at: string): void => {
      if (node === null || typeof node !== 'object') return
      const schemaNode = node as Record<string, unknown>
      if (schemaNode.type === 'object' && !open.has(at)) assert.equal(schemaNode.additionalProperties, false, `${at}: additionalProperties false`)
      for (const [key, child] of Object.entries(schemaNode)) {
        if (['properties', 'definitions'].includes(key)) for (const [name, sub] of Object.entries(child as Record<string, unknown>)) visit(sub, `${at}/${key}/${name}`)
        else if (key === 'items') visit(child, `${at}/items`)
      }
    }
    visit(valuesSchema, '#')
    const text = readFileSync(join(CHART, 'values.schema.json'), 'utf8')
    assert.equal(text, withChartConfigKeys(text), 'the config keys are the schema\'s: run `node scripts/write-config-table.ts`')
  })

  it('autoscaling is off by default; on, it brings a LoadBalancer per worker it may run, as values.yaml, NOTES and the README say (issue 20)', () => {
    const values = chartValues(CHART) as { replicaCount: number, autoscaling: { enabled: boolean, maxReplicas: number } }
    assert.equal(values.autoscaling.enabled, false)
    const loadBalancers = (r: ChartRender): number => r.manifests.filter((m) => m.kind === 'Service' && (m.spec as { type?: string }).type === 'LoadBalancer').length
    assert.equal(loadBalancers(render()), values.replicaCount)
    const scaled = render(AUTOSCALING_ON)
    assert.equal(loadBalancers(scaled), values.autoscaling.maxReplicas, 'one per worker the HPA may run, however few run')
    assert.match(scaled.files.get('templates/NOTES.txt') ?? '', new RegExp(`That is ${values.autoscaling.maxReplicas} LoadBalancer Services, one cloud load balancer each: one per worker autoscaling\\.maxReplicas allows`))
    assert.match(render().files.get('templates/NOTES.txt') ?? '', new RegExp(`That is ${values.replicaCount} LoadBalancer Services, one cloud load balancer each\\.`))
    const valuesText = readFileSync(join(CHART, 'values.yaml'), 'utf8')
    assert.match(valuesText, /one LoadBalancer Service[\s\S]*per worker that \*can\* exist: maxReplicas of\n# them when this is on/, 'values.yaml says what autoscaling costs in load balancers')
    assert.match(readFileSync(join(CHART, 'README.md'), 'utf8'), /`autoscaling\.\*` \| off\b.*one LoadBalancer per `maxReplicas`/, 'the chart README says so too')
  })

  it('Alertmanager: off by default; on, one pod with the repository\'s config, which amtool accepts, behind a Service no worker selector takes (issue 20)', async () => {
    assert.ok(!render().manifests.some((m) => m.metadata.labels?.['app.kubernetes.io/component'] === 'alertmanager'), 'off by default')
    assert.equal(readFileSync(join(CHART, 'files/alertmanager.yml'), 'utf8'), readRepoFile(ALERTMANAGER_FILE), 'helm/pharos/files/alertmanager.yml is a copy of ' + ALERTMANAGER_FILE)
    const r = render([['alertmanager.enabled', 'true'], ['alertmanager.secrets', '{pagerduty}']])
    const deployment = find(r, 'Deployment')
    const pod = (deployment.spec as { template: { metadata: { labels: Record<string, string> }, spec: { containers: Array<{ args: string[], ports: Array<{ name: string, containerPort: number }>, volumeMounts: Array<{ name: string, mountPath: string }> }>, volumes: Array<{ name: string, secret?: { secretName: string }, projected?: unknown }> } } }).template
    const container = pod.spec.containers[0] ?? assert.fail()
    const configPath = container.args.find((arg) => arg.startsWith('--config.file='))?.slice('--config.file='.length) ?? ''
    const mount = container.volumeMounts.find((m) => configPath.startsWith(`${m.mountPath}/`))
    const volume = pod.spec.volumes.find((v) => v.name === mount?.name)
    const secret = find(r, 'Secret', volume?.secret?.secretName)
    const config = secret.stringData?.[configPath.slice((mount?.mountPath.length ?? 0) + 1)]
    assert.equal(config, readRepoFile(ALERTMANAGER_FILE).replace(/\n$/, ''), 'the config file the pod reads is the repository\'s')
    const dir = mkdtempSync(join(tmpdir(), 'pharos-chart-alertmanager-'))
    writeFileSync(join(dir, 'alertmanager.yml'), config ?? '')
    assert.match(await amtool('check-config', join(dir, 'alertmanager.yml')), /SUCCESS/)
    assert.ok(container.volumeMounts.some((m) => m.mountPath === '/etc/alertmanager/secrets'), 'receivers\' credential files where the examples read them')
    const service = find(r, 'Service', `${statefulSet(r).manifest.metadata.name}-alertmanager`).spec as { selector: Record<string, string>, ports: Array<{ port: number, targetPort: string }> }
    const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([key, value]) => labels[key] === value)
    assert.ok(selects(service.selector, pod.metadata.labels), 'the Service selects the Alertmanager pod')
    assert.equal(container.ports.find((p) => p.name === service.ports[0]?.targetPort)?.containerPort, 9093)
    // The workers' selectors must not take the Alertmanager pod in, nor its the workers.
    const workerLabels = statefulSet(r).labels
    for (const m of r.manifests.filter((m) => m.kind === 'Service' && m.metadata.labels?.['app.kubernetes.io/component'] !== 'alertmanager')) {
      assert.ok(!selects((m.spec as { selector: Record<string, string> }).selector, pod.metadata.labels), `Service ${m.metadata.name} does not select the Alertmanager`)
    }
    assert.ok(!selects((find(r, 'PodDisruptionBudget').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, pod.metadata.labels))
    assert.ok(!selects(service.selector, workerLabels))
    // Config from values instead, and a Secret of one's own instead of the chart's.
    const custom = render([['alertmanager.enabled', 'true'], ['alertmanager.config.route.receiver', 'ops'], ['alertmanager.config.receivers', 'null']])
    assert.match(find(custom, 'Secret', volume?.secret?.secretName).stringData?.['alertmanager.yml'] ?? '', /receiver: ops/)
    const own = render([['alertmanager.enabled', 'true'], ['alertmanager.existingConfigSecret', 'my-alertmanager']])
    assert.ok(!own.manifests.some((m) => m.kind === 'Secret' && m.metadata.name === volume?.secret?.secretName))
    assert.ok(JSON.stringify(find(own, 'Deployment').spec).includes('"secretName":"my-alertmanager"'))
  })

  it('Grafana dashboards: off by default; on, a ConfigMap for the sidecar with every dashboard of deploy/grafana (issue 20)', () => {
    assert.ok(!render().manifests.some((m) => m.metadata.labels?.['app.kubernetes.io/component'] === 'dashboards'), 'off by default')
    const r = render([['grafanaDashboards.enabled', 'true']])
    const configMap = r.manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.labels?.['app.kubernetes.io/component'] === 'dashboards')
    assert.ok(configMap !== undefined)
    assert.equal(configMap.metadata.labels?.grafana_dashboard, '1', 'the label kube-prometheus-stack\'s Grafana sidecar watches')
    assert.equal(configMap.metadata.annotations?.grafana_folder, 'Pharos')
    assert.deepEqual(Object.keys(configMap.data ?? {}).sort(), DASHBOARD_FILES.map((file) => file.split('/').at(-1) ?? '').sort(), 'every dashboard')
    for (const file of DASHBOARD_FILES) {
      const name = file.split('/').at(-1) ?? ''
      assert.equal(readFileSync(join(CHART, 'files/dashboards', name), 'utf8'), readRepoFile(file), `helm/pharos/files/dashboards/${name} is a copy of ${file}`)
      assert.deepEqual(JSON.parse(configMap.data?.[name] ?? 'null'), JSON.parse(readRepoFile(file)), `${name} in the ConfigMap is the dashboard`)
    }
  })
})

// ----------------------------------------------------------------- a running fleet worker

describe('a fleet worker started from the compose config', () => {
  let worker: WorkerProcess
  before(async () => {
    const [first] = workerEnvs
    assert.ok(first !== undefined)
    const fleet = testFleet()
    // beacon-1's environment, with this machine's Postgres, Redis and free ports.
    worker = await spawnWorker({
      ...(await workerEnv()),
      ...first.env,
      ...fleet({ PHAROS_WORKER_NAME: first.env.PHAROS_WORKER_NAME ?? '', PHAROS_FLEET_SECRET: first.env.PHAROS_FLEET_SECRET ?? '' }),
      DATABASE_URL: await createTestDatabase('deploy_surface'),
      PHAROS_HTTP_HOST: '127.0.0.1',
      PHAROS_HTTP_PORT: '0',
      PHAROS_P2P_HOST: '127.0.0.1',
      PHAROS_P2P_TCP_PORT: '0',
      PHAROS_P2P_WS_PORT: '0'
    })
  })
  after(async () => { if (worker !== undefined) await stopWorker(worker) })

  it('answers every probe, health check and scrape path the deploy files name', async () => {
    const r = render([['serviceMonitor.enabled', 'true']])
    const container = statefulSet(r).pod.containers[0] as Container
    const paths = new Set([
      /'(\/[a-z]+)'/.exec(finalStage.instructions.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '')?.[1] ?? 'missing HEALTHCHECK path',
      pharosJob?.metrics_path ?? '/metrics',
      ...[container.startupProbe, container.livenessProbe, container.readinessProbe].map((probe) => probe?.httpGet.path ?? 'missing probe'),
      ...(find(r, 'ServiceMonitor').spec as { endpoints: Array<{ path: string }> }).endpoints.map((endpoint) => endpoint.path)
    ])
    assert.deepEqual([...paths].sort(), ['/healthz', '/metrics', '/readyz'])
    for (const path of paths) {
      const response = await fetch(`${worker.httpUrl}${path}`)
      assert.equal(response.status, 200, `GET ${path}: ${await response.text()}`)
    }
  })

  it('exports from the start every label the alerts take increase() of, and the limits they divide by (issue 20)', async () => {
    await fetch(`${worker.httpUrl}/healthz`)
    const text = await (await fetch(`${worker.httpUrl}/metrics`)).text()
    const sample = (series: string): number | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `))
      return line === undefined ? undefined : Number(line.slice(series.length + 1))
    }
    // A counter series that first appears at 1 reads 0 to increase(): the first failure would not fire.
    for (const series of [
      'pharos_gc_runs_total{outcome="failed"}', 'pharos_gc_runs_total{outcome="completed"}',
      'pharos_audit_rounds_total{outcome="failed"}', 'pharos_audit_rounds_total{outcome="completed"}',
      'pharos_audit_failures_total{reason="missing"}', 'pharos_audit_failures_total{reason="corrupt"}',
      'pharos_audit_repairs_total{outcome="failed"}', 'pharos_audit_repairs_total{outcome="repaired"}'
    ]) assert.equal(sample(series), 0, `${series} is exported at 0 before anything happened`)
    const config = loads(workerEnvs[0]?.env ?? {}, 'beacon-1')
    assert.equal(sample('pharos_relay_reservations_limit'), config.relayMaxReservations, 'PHAROS_RELAY_MAX_RESERVATIONS')
    const limit = sample('pharos_memory_limit_bytes')
    assert.ok(limit !== undefined && limit >= 0 && limit < totalmem(), 'the cgroup memory limit, 0 without one')
    assert.match(text, /^pharos_http_response_start_seconds_count\{method="GET",route="\/healthz",status="2xx"\} [1-9]/m, 'a response start is measured')
  })

  it('exports every metric the alert rules and dashboards use', async () => {
    const exposition = parseExposition(await (await fetch(`${worker.httpUrl}/metrics`)).text())
    // Series Prometheus makes itself for each target, not the worker.
    const prometheusOwn = new Set(['up'])
    const used = new Map<string, string[]>()
    const note = (name: string, where: string): void => { used.set(name, [...(used.get(name) ?? []), where]) }
    for (const { file, rules: ruleFile } of ruleFiles) {
      for (const rule of ruleFile.groups.flatMap((group) => group.rules)) for (const name of promqlMetricNames(rule.expr)) note(name, `${file} ${rule.alert ?? rule.record ?? ''}`)
    }
    for (const { file, dashboard } of dashboards) {
      for (const query of dashboardQueries(dashboard)) for (const name of promqlMetricNames(query.expr)) note(name, `${file} ${query.where}`)
    }
    assert.ok(used.size > 40, `names found: ${used.size}`)
    const missing = [...used].filter(([name]) => !recorded.has(name) && !prometheusOwn.has(name) && !isExported(name, exposition))
    assert.deepEqual(missing.map(([name, where]) => `${name} (${where[0] ?? ''}${where.length > 1 ? ` and ${where.length - 1} more` : ''})`), [], 'used in rules or dashboards but not exported by the worker')
  })
})
