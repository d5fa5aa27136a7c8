/**
 * Readers for the deploy surface (deploy/Dockerfile, docker-compose.yml, the Helm chart,
 * Prometheus rules and Grafana dashboards), so deploy-surface.test.ts can check those files
 * against the worker without docker, helm or a Prometheus server. Each reader covers what
 * the files here use and throws on anything else, so a construct it does not know fails
 * the test instead of passing unread.
 */
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import yaml from 'js-yaml'

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export function readRepoFile (path: string): string {
  return readFileSync(join(ROOT, path), 'utf8')
}

export function readYaml<T = unknown> (path: string): T {
  return yaml.load(readRepoFile(path)) as T
}

// ---------------------------------------------------------------------------- Dockerfile

export interface DockerInstruction {
  keyword: string
  args: string
}

export interface DockerStage {
  image: string
  name: string | undefined
  instructions: DockerInstruction[]
}

/** Stages of a Dockerfile: continuation lines joined, comments dropped. */
export function parseDockerfile (text: string): DockerStage[] {
  const stages: DockerStage[] = []
  const logical: string[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    if (current === '' && /^\s*#/.test(raw)) continue
    if (raw.trim() === '' && current === '') continue
    if (/\\\s*$/.test(raw)) {
      current += raw.replace(/\\\s*$/, ' ')
      continue
    }
    logical.push(current + raw)
    current = ''
  }
  if (current !== '') logical.push(current)
  for (const line of logical) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line)
    if (match === null) throw new Error(`Dockerfile line not understood: ${line}`)
    const keyword = (match[1] ?? '').toUpperCase()
    const args = (match[2] ?? '').trim()
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)
      if (from === null) throw new Error(`FROM not understood: ${args}`)
      stages.push({ image: from[1] ?? '', name: from[2], instructions: [] })
      continue
    }
    const stage = stages.at(-1)
    if (stage === undefined) throw new Error(`${keyword} before FROM`)
    stage.instructions.push({ keyword, args })
  }
  return stages
}

/** The words of an exec-form (JSON array) instruction, or undefined for shell form. */
export function execForm (args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined
  return JSON.parse(args) as string[]
}

/** `KEY=value KEY2="value 2"` of ENV (and ARG), quotes removed. */
export function parseEnvArgs (args: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const match of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const value = match[2] ?? ''
    env[match[1] ?? ''] = value.startsWith('"') ? JSON.parse(value) as string : value
  }
  return env
}

/** COPY's flags, sources and destination. */
export function parseCopy (args: string): { from: string | undefined, sources: string[], dest: string } {
  const words = execForm(args) ?? args.split(/\s+/)
  const flags = words.filter((word) => word.startsWith('--'))
  const paths = words.filter((word) => !word.startsWith('--'))
  const from = flags.find((flag) => flag.startsWith('--from='))?.slice('--from='.length)
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' }
}

// ------------------------------------------------------------------------ docker compose

/**
 * Compose variable interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `${VAR:+alternative}`.
 */
export function interpolate (text: string, env: Readonly<Record<string, string | undefined>>): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (whole, name: string | undefined, op: string | undefined, word: string | undefined, bare: string | undefined) => {
      if (whole === '$$') return '$'
      if (bare !== undefined) return env[bare] ?? ''
      const value = env[name ?? '']
      const unsetOrEmpty = value === undefined || value === ''
      switch (op) {
        case undefined: return value ?? ''
        case ':-': return unsetOrEmpty ? interpolate(word ?? '', env) : value
        case '-': return value === undefined ? interpolate(word ?? '', env) : value
        case ':?': if (unsetOrEmpty) throw new Error(`compose: ${name ?? ''} is required: ${word ?? ''}`); return value
        case '?': if (value === undefined) throw new Error(`compose: ${name ?? ''} is required: ${word ?? ''}`); return value
        case ':+': return unsetOrEmpty ? '' : interpolate(word ?? '', env)
        default: throw new Error(`compose: interpolation ${whole} not understood`)
      }
    })
}

/**
 * A `.env` file as compose reads it: `KEY=value` lines, `#` comment lines and blank lines;
 * a value may be single- or double-quoted. Anything else throws.
 */
export function parseDotEnv (text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of text.split('\n')) {
    if (line.trim() === '' || /^\s*#/.test(line)) continue
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
    if (match === null) throw new Error(`.env line not understood: ${line}`)
    const raw = match[2] ?? ''
    const quoted = /^(["'])(.*)\1$/.exec(raw)
    if (quoted === null && /\s#|^["']/.test(raw)) throw new Error(`.env value not understood: ${line}`)
    env[match[1] ?? ''] = quoted?.[2] ?? raw
  }
  return env
}

/** Names of the variables a compose file's text interpolates, and how: `:?`, `:-`, … or '' for plain. */
export function composeVariables (text: string): Map<string, Set<string>> {
  const variables = new Map<string, Set<string>>()
  for (const match of text.matchAll(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?|\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
    const name = match[1] ?? match[3]
    if (name === undefined) continue
    const uses = variables.get(name) ?? new Set<string>()
    uses.add(match[2] ?? '')
    variables.set(name, uses)
  }
  return variables
}

/** Every string in a parsed compose file, interpolated. */
export function interpolateAll<T> (value: T, env: Readonly<Record<string, string | undefined>>): T {
  if (typeof value === 'string') return interpolate(value, env) as T
  if (Array.isArray(value)) return value.map((item: unknown) => interpolateAll(item, env)) as T
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateAll(item, env)])) as T
  }
  return value
}

/** A compose service's `environment`, map or list form, as strings. */
export function serviceEnvironment (service: { environment?: Record<string, unknown> | string[] }): Record<string, string> {
  const environment = service.environment ?? {}
  if (Array.isArray(environment)) {
    return Object.fromEntries(environment.map((entry) => {
      const eq = entry.indexOf('=')
      return eq === -1 ? [entry, ''] : [entry.slice(0, eq), entry.slice(eq + 1)]
    }))
  }
  return Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, value === null ? '' : String(value)]))
}

export interface PublishedPort {
  hostIp: string | undefined
  host: number
  container: number
}

/** `"4001:4001"`, `"127.0.0.1:8081:8080"` (short syntax, TCP). */
export function parsePort (spec: string): PublishedPort {
  const match = /^(?:([\d.]+):)?(\d+):(\d+)(?:\/tcp)?$/.exec(spec)
  if (match === null) throw new Error(`compose port not understood: ${spec}`)
  return { hostIp: match[1], host: Number(match[2]), container: Number(match[3]) }
}

// --------------------------------------------------------------- Prometheus exposition

export interface Exposition {
  /** Family name (as in `# TYPE`) → type. */
  families: Map<string, string>
  /** Names of the samples present. */
  samples: Set<string>
}

export function parseExposition (text: string): Exposition {
  const families = new Map<string, string>()
  const samples = new Set<string>()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line)
    if (type !== null) { families.set(type[1] ?? '', type[2] ?? ''); continue }
    if (line.startsWith('#') || line.trim() === '') continue
    const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)/.exec(line)
    if (sample !== null) samples.add(sample[1] ?? '')
  }
  return { families, samples }
}

/**
 * Whether a name used in PromQL is exported: a family (a labelled counter with no sample
 * yet still has its `# TYPE` line), a sample, or a histogram's `_bucket`/`_sum`/`_count`
 * (a summary's `_sum`/`_count`) series of a family of that type.
 */
export function isExported (name: string, exposition: Exposition): boolean {
  if (exposition.families.has(name) || exposition.samples.has(name)) return true
  const suffix = /^(.*)_(bucket|sum|count)$/.exec(name)
  if (suffix === null) return false
  const type = exposition.families.get(suffix[1] ?? '')
  return type === 'histogram' || (type === 'summary' && suffix[2] !== 'bucket')
}

// ------------------------------------------------------------------------------ PromQL

const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan'])

/** Grafana's variables replaced by values PromQL accepts, so promtool can parse the query. */
export function substituteGrafanaVariables (expr: string): string {
  return expr
    .replace(/\$__(rate_)?interval|\$__range/g, '5m')
    .replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}|\$[A-Za-z_][A-Za-z0-9_]*/g, 'x')
}

/**
 * Metric names a PromQL expression selects: identifiers that are neither functions
 * (followed by `(`), keywords, label names (inside `{…}` or a by/without/on/ignoring
 * list), strings, durations nor numbers. The expression must be valid PromQL (promtool
 * checks that separately).
 */
export function promqlMetricNames (expr: string): string[] {
  let text = substituteGrafanaVariables(expr)
  text = text.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' "" ')
  text = text.replace(/#[^\n]*/g, ' ')
  text = text.replace(/\{[^}]*\}/g, ' ')
  text = text.replace(/\[[^\]]*\]/g, ' ')
  text = text.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const names = new Set<string>()
  const token = /(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*)|([A-Za-z_:][A-Za-z0-9_:]*)|(\S)/g
  let match
  while ((match = token.exec(text)) !== null) {
    const identifier = match[2]
    if (identifier === undefined) continue
    const rest = text.slice(token.lastIndex)
    if (/^\s*\(/.test(rest)) continue
    if (PROMQL_KEYWORDS.has(identifier.toLowerCase())) continue
    names.add(identifier)
  }
  return [...names]
}

/** Queries of a Grafana dashboard: panel targets (rows included) and template variables. */
export function dashboardQueries (dashboard: GrafanaDashboard): Array<{ where: string, expr: string }> {
  const queries: Array<{ where: string, expr: string }> = []
  const visit = (panels: GrafanaPanel[] | undefined): void => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) {
        if (typeof target.expr === 'string' && target.expr !== '') queries.push({ where: `panel "${panel.title}" ${target.refId ?? ''}`, expr: target.expr })
      }
      visit(panel.panels)
    }
  }
  visit(dashboard.panels)
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query ?? ''
    const labelValues = /^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$/.exec(query.trim())
    const queryResult = /^query_result\((.*)\)$/.exec(query.trim())
    const expr = labelValues?.[1] ?? queryResult?.[1]
    if (expr === undefined) throw new Error(`variable ${variable.name}: query not understood: ${query}`)
    queries.push({ where: `variable $${variable.name}`, expr })
  }
  return queries
}

export interface GrafanaPanel {
  type: string
  title: string
  datasource?: { type?: string, uid?: string }
  targets?: Array<{ expr?: string, refId?: string, datasource?: { type?: string, uid?: string } }>
  panels?: GrafanaPanel[]
}

export interface GrafanaDashboard {
  uid: string
  title: string
  panels: GrafanaPanel[]
  templating?: { list: Array<{ type: string, name: string, query?: string | { query?: string } }> }
}

export interface RuleFile {
  groups: Array<{ name: string, rules: Array<{ alert?: string, record?: string, expr: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }> }>
}

// ------------------------------------------------------------------------------- Helm

/**
 * A Go text/template + Sprig subset, enough to render helm/pharos the way `helm template`
 * does: actions with trim markers, if/else if/else, range (lists, maps, `$i, $v :=`),
 * with, define/include, variables, pipelines and the Sprig functions listed in `functions`
 * below (any other is an error). Values from YAML are float64 as in Helm, so printing a
 * large or fractional one throws (Helm would print 1e+06); `--set` integers are int64
 * (BigInt here) as in Helm.
 */
type Node =
  | { kind: 'text', text: string }
  | { kind: 'action', pipe: Pipe }
  | { kind: 'if', branches: Array<{ pipe: Pipe, body: Node[] }>, otherwise: Node[] }
  | { kind: 'range', pipe: Pipe, body: Node[], otherwise: Node[] }
  | { kind: 'with', pipe: Pipe, body: Node[], otherwise: Node[] }
  | { kind: 'template', name: string, pipe: Pipe | undefined }

interface Pipe { decl: string[], assign: boolean, commands: Operand[][] }

type Operand =
  | { kind: 'literal', value: unknown }
  | { kind: 'field', base: 'dot' | string, path: string[] }
  | { kind: 'ident', name: string }
  | { kind: 'sub', pipe: Pipe }

interface Token { kind: 'text' | 'action', text: string, where: string }

function lexTemplate (source: string, name: string): Token[] {
  const tokens: Token[] = []
  let pos = 0
  let trimNext = false
  while (pos < source.length) {
    const open = source.indexOf('{{', pos)
    let text = source.slice(pos, open === -1 ? source.length : open)
    if (trimNext) text = text.replace(/^\s+/, '')
    trimNext = false
    if (open === -1) { tokens.push({ kind: 'text', text, where: name }); break }
    let start = open + 2
    if (source.startsWith('- ', start) || source.startsWith('-\n', start)) {
      text = text.replace(/\s+$/, '')
      start += 1
    }
    tokens.push({ kind: 'text', text, where: name })
    let end = start
    let quote: string | undefined
    for (; end < source.length; end++) {
      const ch = source[end]
      if (quote !== undefined) {
        if (ch === '\\' && quote === '"') { end++; continue }
        if (ch === quote) quote = undefined
        continue
      }
      if (ch === '"' || ch === '`') { quote = ch; continue }
      if (source.startsWith('/*', end)) {
        const close = source.indexOf('*/', end + 2)
        if (close === -1) throw new Error(`${name}: unclosed comment`)
        end = close + 1
        continue
      }
      if (source.startsWith('}}', end)) break
      if (source.startsWith('{{', end)) throw new Error(`${name}: "{{" inside an action at ${lineOf(source, end)}`)
    }
    if (end >= source.length) throw new Error(`${name}: unclosed action at ${lineOf(source, open)}`)
    let body = source.slice(start, end)
    if (/\s-$/.test(body)) { body = body.slice(0, -1); trimNext = true }
    tokens.push({ kind: 'action', text: body.trim(), where: `${name}:${lineOf(source, open)}` })
    pos = end + 2
  }
  return tokens
}

function lineOf (source: string, index: number): number {
  return source.slice(0, index).split('\n').length
}

function tokenizeAction (text: string, where: string): string[] {
  const words: string[] = []
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|:=|[()|=,]|[^\s()|=,]+)\s*/y
  while (re.lastIndex < text.length) {
    const match = re.exec(text)
    if (match === null) throw new Error(`${where}: action not understood: ${text}`)
    words.push(match[1] ?? '')
  }
  return words
}

function parsePipe (words: string[], where: string): Pipe {
  let decl: string[] = []
  let assign = false
  const declEnd = words.findIndex((word) => word === ':=' || word === '=')
  if (declEnd !== -1 && words.slice(0, declEnd).every((word) => word.startsWith('$') || word === ',')) {
    decl = words.slice(0, declEnd).filter((word) => word !== ',')
    assign = words[declEnd] === '='
    words = words.slice(declEnd + 1)
  }
  const commands: Operand[][] = []
  let i = 0
  const operands = (): Operand[] => {
    const command: Operand[] = []
    while (i < words.length && words[i] !== '|' && words[i] !== ')') command.push(operand())
    return command
  }
  const operand = (): Operand => {
    const word = words[i++] ?? ''
    if (word === '(') {
      const inner: Operand[][] = []
      for (;;) {
        inner.push(operands())
        if (words[i] === '|') { i++; continue }
        if (words[i] !== ')') throw new Error(`${where}: missing ")"`)
        i++
        break
      }
      return { kind: 'sub', pipe: { decl: [], assign: false, commands: inner } }
    }
    if (word.startsWith('"')) return { kind: 'literal', value: JSON.parse(word) }
    if (word.startsWith('`')) return { kind: 'literal', value: word.slice(1, -1) }
    if (/^-?\d+(\.\d+)?$/.test(word)) return { kind: 'literal', value: word.includes('.') ? Number(word) : BigInt(word) }
    if (word === 'true' || word === 'false') return { kind: 'literal', value: word === 'true' }
    if (word === 'nil') return { kind: 'literal', value: undefined }
    if (word === '.') return { kind: 'field', base: 'dot', path: [] }
    if (word.startsWith('.')) return { kind: 'field', base: 'dot', path: word.slice(1).split('.') }
    if (word.startsWith('$')) {
      const [variable, ...path] = word.split('.')
      return { kind: 'field', base: variable ?? '$', path }
    }
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) return { kind: 'ident', name: word }
    throw new Error(`${where}: operand not understood: ${word}`)
  }
  for (;;) {
    commands.push(operands())
    if (i >= words.length) break
    if (words[i] === '|') { i++; continue }
    throw new Error(`${where}: unexpected ${words[i] ?? ''}`)
  }
  if (commands.some((command) => command.length === 0)) throw new Error(`${where}: empty command in pipeline`)
  return { decl, assign, commands }
}

interface Parsed { nodes: Node[], defines: Map<string, Node[]> }

function parseTemplate (source: string, name: string): Parsed {
  const tokens = lexTemplate(source, name)
  const defines = new Map<string, Node[]>()
  let i = 0
  // Parses nodes until one of `stops` (an action keyword); returns it.
  const parseList = (stops: string[]): { nodes: Node[], stop: string | undefined, rest: string[], where: string } => {
    const nodes: Node[] = []
    while (i < tokens.length) {
      const token = tokens[i++] as Token
      if (token.kind === 'text') { if (token.text !== '') nodes.push({ kind: 'text', text: token.text }); continue }
      if (token.text.startsWith('/*')) continue
      const words = tokenizeAction(token.text, token.where)
      const keyword = words[0] ?? ''
      if (stops.includes(keyword)) return { nodes, stop: keyword, rest: words.slice(1), where: token.where }
      if (keyword === 'end' || keyword === 'else') throw new Error(`${token.where}: unexpected {{ ${keyword} }}`)
      if (keyword === 'if' || keyword === 'with' || keyword === 'range') {
        const pipe = parsePipe(words.slice(1), token.where)
        const first: { pipe: Pipe, body: Node[] } = { pipe, body: [] }
        const branches = [first]
        let otherwise: Node[] = []
        let part = parseList(['else', 'end'])
        first.body = part.nodes
        while (part.stop === 'else') {
          if (keyword === 'if' && part.rest[0] === 'if') {
            const branch: { pipe: Pipe, body: Node[] } = { pipe: parsePipe(part.rest.slice(1), part.where), body: [] }
            branches.push(branch)
            part = parseList(['else', 'end'])
            branch.body = part.nodes
            continue
          }
          if (part.rest.length > 0) throw new Error(`${part.where}: {{ else ${part.rest.join(' ')} }} not supported`)
          part = parseList(['end'])
          otherwise = part.nodes
        }
        if (part.stop !== 'end') throw new Error(`${token.where}: {{ ${keyword} }} without {{ end }}`)
        if (keyword === 'if') nodes.push({ kind: 'if', branches, otherwise })
        else nodes.push({ kind: keyword, pipe, body: branches[0]?.body ?? [], otherwise })
        continue
      }
      if (keyword === 'define') {
        const defineName = JSON.parse(words[1] ?? '""') as string
        const body = parseList(['end'])
        if (body.stop === undefined) throw new Error(`${token.where}: {{ define }} without {{ end }}`)
        defines.set(defineName, body.nodes)
        continue
      }
      if (keyword === 'template') {
        const templateName = JSON.parse(words[1] ?? '""') as string
        nodes.push({ kind: 'template', name: templateName, pipe: words.length > 2 ? parsePipe(words.slice(2), token.where) : undefined })
        continue
      }
      nodes.push({ kind: 'action', pipe: parsePipe(words, token.where) })
    }
    return { nodes, stop: undefined, rest: [], where: name }
  }
  const top = parseList([])
  return { nodes: top.nodes, defines }
}

class Scope {
  private readonly vars: Array<Map<string, unknown>> = [new Map()]
  constructor (root: unknown) { this.vars[0]?.set('$', root) }
  push (): void { this.vars.push(new Map()) }
  pop (): void { this.vars.pop() }
  declare (name: string, value: unknown): void { this.vars.at(-1)?.set(name, value) }
  assign (name: string, value: unknown): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      const frame = this.vars[i]
      if (frame?.has(name) === true) { frame.set(name, value); return }
    }
    throw new Error(`undefined variable ${name}`)
  }
  get (name: string): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      const frame = this.vars[i]
      if (frame?.has(name) === true) return frame.get(name)
    }
    throw new Error(`undefined variable ${name}`)
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** Go template truth: false, 0, nil, "" and empty collections are false. */
function truthy (value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === '' || value === 0 || value === 0n) return false
  if (Array.isArray(value)) return value.length > 0
  if (isObject(value)) return Object.keys(value).length > 0
  return true
}

/** fmt.Sprint of a value, as Helm prints it into a manifest. */
function goString (value: unknown): string {
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'boolean') return String(value)
  if (typeof value === 'number') {
    // float64 from YAML: Go prints %v of 1000000 as 1e+06. Refuse what Helm would mangle.
    if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value)
    if (!Number.isInteger(value) && Math.abs(value) >= 1e-4 && Math.abs(value) < 1e6) return String(value)
    throw new Error(`Helm would print the float64 ${value} as ${value.toExponential()}: quote it in values.yaml`)
  }
  throw new Error(`printing a ${Array.isArray(value) ? 'list' : 'map'} directly (Helm prints map[...]): use toYaml`)
}

function toPlain (value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value)
  if (Array.isArray(value)) return value.map(toPlain)
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toPlain(item)]))
  return value
}

function toYamlString (value: unknown): string {
  if (value === undefined || value === null) return 'null'
  return yaml.dump(toPlain(value), { lineWidth: -1, noRefs: true, sortKeys: true }).replace(/\n$/, '')
}

function numeric (value: unknown): number {
  if (typeof value === 'bigint') return Number(value)
  if (typeof value === 'number') return value
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value)
  if (value === undefined || value === null) return 0
  throw new Error(`not a number: ${JSON.stringify(value)}`)
}

function equal (a: unknown, b: unknown): boolean {
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return Number(a) === Number(b)
  return a === b
}

function sprintf (format: string, args: unknown[]): string {
  let next = 0
  return format.replace(/%([%sdvq])/g, (_whole, verb: string) => {
    if (verb === '%') return '%'
    const arg = args[next++]
    if (verb === 'q') return JSON.stringify(goString(arg))
    if (verb === 'd') return BigInt(numeric(arg)).toString()
    return goString(arg)
  })
}

type TemplateFunction = (...args: unknown[]) => unknown

export interface ChartRender {
  /** Rendered output by template file name (templates/x.yaml), partials excluded. */
  files: Map<string, string>
  /** Every manifest, parsed. */
  manifests: Manifest[]
}

export interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string, labels?: Record<string, string>, annotations?: Record<string, string> }
  spec?: Record<string, unknown>
  data?: Record<string, string>
  stringData?: Record<string, string> | null
  [key: string]: unknown
}

export function chartValues (chartDir: string): Record<string, unknown> {
  return yaml.load(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>
}

/** Helm's `--set a.b=value`: true/false/null and integers (int64) are typed, `{a,b}` is a list, the rest are strings. */
export function setValue (values: Record<string, unknown>, path: string, raw: string): void {
  const keys = path.split('.')
  let node = values
  for (const key of keys.slice(0, -1)) {
    const next = node[key]
    if (!isObject(next)) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  const last = keys.at(-1) ?? ''
  const list = /^\{(.*)\}$/.exec(raw)
  if (list !== null) { node[last] = (list[1] ?? '').split(',').filter((item) => item !== ''); return }
  node[last] = raw === 'true' ? true : raw === 'false' ? false : raw === 'null' ? null : /^-?\d+$/.test(raw) ? BigInt(raw) : raw
}

export interface RenderOptions {
  releaseName: string
  namespace: string
}

/** An error of a chart's values.schema.json, as `helm install` reports it. */
export class ChartValuesError extends Error {
  override readonly name = 'ChartValuesError'
  readonly problems: string[]

  constructor (problems: string[]) {
    super(`values don't meet the specifications of the schema(s) in the following chart(s):\n${problems.map((problem) => `- ${problem}`).join('\n')}`)
    this.problems = problems
  }
}

/**
 * Checks values against the chart's values.schema.json (JSON Schema draft-07), as Helm does
 * before it renders anything; throws a ChartValuesError naming each bad path. `--set`
 * integers (BigInt here) are checked as numbers.
 */
export function validateChartValues (chartDir: string, values: Record<string, unknown>): void {
  const file = join(chartDir, 'values.schema.json')
  if (!existsSync(file)) return
  const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync(file, 'utf8')) as object)
  if (validate(toPlain(values)) === true) return
  throw new ChartValuesError((validate.errors ?? []).map((error) => {
    const at = error.instancePath === '' ? '(root)' : error.instancePath.slice(1).replaceAll('/', '.')
    const extra = (error.params as { additionalProperty?: string }).additionalProperty
    return extra === undefined ? `${at}: ${error.message ?? 'invalid'}` : `${at}: additional property ${extra} is not allowed`
  }))
}

export function renderChart (chartDir: string, values: Record<string, unknown>, options: RenderOptions): ChartRender {
  validateChartValues(chartDir, values)
  const chart = yaml.load(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, string>
  const templateDir = join(chartDir, 'templates')
  const chartName = chart.name ?? ''
  const defines = new Map<string, Node[]>()
  const files = new Map<string, Node[]>()
  for (const file of readdirSync(templateDir).sort()) {
    const source = readFileSync(join(templateDir, file), 'utf8')
    const parsed = parseTemplate(source, `templates/${file}`)
    for (const [name, body] of parsed.defines) {
      if (defines.has(name)) throw new Error(`template "${name}" defined twice`)
      defines.set(name, body)
    }
    defines.set(`${chartName}/templates/${file}`, parsed.nodes)
    files.set(file, parsed.nodes)
  }

  const root = {
    Values: values,
    Release: { Name: options.releaseName, Namespace: options.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
    Chart: { Name: chartName, Version: chart.version, AppVersion: chart.appVersion, Description: chart.description },
    Capabilities: { KubeVersion: { Version: 'v1.30.0', Major: '1', Minor: '30' } },
    Template: { BasePath: `${chartName}/templates`, Name: '' },
    Files: {
      Get: (path: unknown): string => {
        const file = join(chartDir, String(path))
        return existsSync(file) ? readFileSync(file, 'utf8') : ''
      }
    }
  }

  const include = (name: unknown, data: unknown): string => {
    const body = defines.get(String(name))
    if (body === undefined) throw new Error(`include: no template named "${String(name)}"`)
    return execute(body, data, new Scope(data))
  }

  const functions: Record<string, TemplateFunction> = {
    include,
    required: (message, value) => {
      if (value === undefined || value === null || value === '') throw new Error(`required: ${String(message)}`)
      return value
    },
    fail: (message) => { throw new Error(`fail: ${String(message)}`) },
    default: (fallback, value) => truthy(value) ? value : fallback,
    empty: (value) => !truthy(value),
    quote: (...args) => args.filter((arg) => arg !== undefined && arg !== null).map((arg) => JSON.stringify(goString(arg))).join(' '),
    squote: (...args) => args.filter((arg) => arg !== undefined && arg !== null).map((arg) => `'${goString(arg)}'`).join(' '),
    toYaml: (value) => toYamlString(value),
    fromYaml: (text) => yaml.load(String(text)) ?? {},
    toJson: (value) => JSON.stringify(toPlain(value)),
    indent: (n, text) => String(text).split('\n').map((line) => ' '.repeat(numeric(n)) + line).join('\n'),
    nindent: (n, text) => '\n' + String(text).split('\n').map((line) => ' '.repeat(numeric(n)) + line).join('\n'),
    printf: (format, ...args) => sprintf(String(format), args),
    print: (...args) => args.map(goString).join(''),
    trunc: (n, text) => String(text).slice(0, numeric(n)),
    trimSuffix: (suffix, text) => String(text).endsWith(String(suffix)) && String(suffix) !== '' ? String(text).slice(0, -String(suffix).length) : String(text),
    trimPrefix: (prefix, text) => String(text).startsWith(String(prefix)) ? String(text).slice(String(prefix).length) : String(text),
    trim: (text) => String(text).trim(),
    lower: (text) => String(text).toLowerCase(),
    upper: (text) => String(text).toUpperCase(),
    replace: (from, to, text) => String(text).split(String(from)).join(String(to)),
    contains: (needle, text) => String(text).includes(String(needle)),
    hasPrefix: (prefix, text) => String(text).startsWith(String(prefix)),
    hasSuffix: (suffix, text) => String(text).endsWith(String(suffix)),
    eq: (a, ...others) => others.some((b) => equal(a, b)),
    ne: (a, b) => !equal(a, b),
    lt: (a, b) => numeric(a) < numeric(b),
    le: (a, b) => numeric(a) <= numeric(b),
    gt: (a, b) => numeric(a) > numeric(b),
    ge: (a, b) => numeric(a) >= numeric(b),
    not: (value) => !truthy(value),
    and: (...args) => { for (const arg of args) if (!truthy(arg)) return arg; return args.at(-1) },
    or: (...args) => { for (const arg of args) if (truthy(arg)) return arg; return args.at(-1) },
    list: (...args) => args,
    dict: (...args) => {
      const out: Record<string, unknown> = {}
      for (let i = 0; i < args.length; i += 2) out[String(args[i])] = args[i + 1]
      return out
    },
    has: (needle, list) => Array.isArray(list) && list.some((item) => equal(item, needle)),
    hasKey: (map, key) => isObject(map) && Object.prototype.hasOwnProperty.call(map, String(key)),
    omit: (map, ...keys) => isObject(map) ? Object.fromEntries(Object.entries(map).filter(([key]) => !keys.includes(key))) : {},
    len: (value) => BigInt(typeof value === 'string' || Array.isArray(value) ? value.length : isObject(value) ? Object.keys(value).length : 0),
    int: (value) => BigInt(Math.trunc(numeric(value))),
    int64: (value) => BigInt(Math.trunc(numeric(value))),
    toString: (value: unknown) => goString(value),
    until: (n) => Array.from({ length: numeric(n) }, (_item, i) => BigInt(i)),
    add: (...args) => BigInt(args.reduce<number>((sum, arg) => sum + numeric(arg), 0)),
    sub: (a, b) => BigInt(numeric(a) - numeric(b)),
    index: (collection, ...keys) => keys.reduce<unknown>((value: unknown, key: unknown) => {
      if (value === undefined || value === null) throw new Error('index of nil')
      return (value as Record<string, unknown>)[typeof key === 'bigint' ? Number(key) : String(key)]
    }, collection),
    sha256sum: (text) => createHash('sha256').update(String(text)).digest('hex'),
    b64enc: (text) => Buffer.from(String(text)).toString('base64')
  }

  const resolveField = (base: unknown, path: string[], what: string): unknown => {
    let value = base
    for (const key of path) {
      if (value === undefined || value === null) throw new Error(`nil pointer evaluating ${what} (at .${key})`)
      if (!isObject(value)) throw new Error(`can't evaluate field ${key} of ${typeof value} in ${what}`)
      value = value[key]
    }
    return value
  }

  const evalOperand = (operand: Operand, dot: unknown, scope: Scope): unknown => {
    switch (operand.kind) {
      case 'literal': return operand.value
      case 'field': {
        const base = operand.base === 'dot' ? dot : scope.get(operand.base)
        return resolveField(base, operand.path, `${operand.base === 'dot' ? '' : operand.base}.${operand.path.join('.')}`)
      }
      case 'sub': return evalPipe(operand.pipe, dot, scope)
      case 'ident': {
        const fn = functions[operand.name]
        if (fn === undefined) throw new Error(`function "${operand.name}" not defined (not in this renderer's subset)`)
        return fn()
      }
    }
  }

  const evalCommand = (command: Operand[], piped: unknown[], dot: unknown, scope: Scope): unknown => {
    const [head, ...rest] = command
    if (head === undefined) throw new Error('empty command')
    if (head.kind === 'ident') {
      const fn = functions[head.name]
      if (fn === undefined) throw new Error(`function "${head.name}" not defined (not in this renderer's subset)`)
      return fn(...rest.map((operand) => evalOperand(operand, dot, scope)), ...piped)
    }
    const value = evalOperand(head, dot, scope)
    if (typeof value === 'function') return (value as TemplateFunction)(...rest.map((operand) => evalOperand(operand, dot, scope)), ...piped)
    if (rest.length > 0 || piped.length > 0) throw new Error('arguments given to a value that is not a function')
    return value
  }

  const evalPipe = (pipe: Pipe, dot: unknown, scope: Scope): unknown => {
    let value: unknown
    pipe.commands.forEach((command, i) => {
      value = evalCommand(command, i === 0 ? [] : [value], dot, scope)
    })
    return value
  }

  const execute = (nodes: Node[], dot: unknown, scope: Scope): string => {
    let out = ''
    for (const node of nodes) {
      switch (node.kind) {
        case 'text': out += node.text; break
        case 'action': {
          const value = evalPipe(node.pipe, dot, scope)
          if (node.pipe.decl.length > 0) {
            const name = node.pipe.decl[0] ?? ''
            if (node.pipe.assign) scope.assign(name, value)
            else scope.declare(name, value)
          } else {
            out += goString(value)
          }
          break
        }
        case 'template': out += include(node.name, node.pipe === undefined ? undefined : evalPipe(node.pipe, dot, scope)); break
        case 'if': {
          const branch = node.branches.find((candidate) => truthy(evalPipe(candidate.pipe, dot, scope)))
          scope.push()
          out += execute(branch?.body ?? node.otherwise, dot, scope)
          scope.pop()
          break
        }
        case 'with': {
          const value = evalPipe(node.pipe, dot, scope)
          scope.push()
          out += truthy(value) ? execute(node.body, value, scope) : execute(node.otherwise, dot, scope)
          scope.pop()
          break
        }
        case 'range': {
          const collection = evalPipe(node.pipe, dot, scope)
          const entries: Array<[unknown, unknown]> = Array.isArray(collection)
            ? collection.map((item, i) => [BigInt(i), item])
            : isObject(collection)
              ? Object.keys(collection).sort().map((key) => [key, collection[key]])
              : collection === undefined || collection === null
                ? []
                : (() => { throw new Error(`range over ${typeof collection}`) })()
          if (entries.length === 0) { out += execute(node.otherwise, dot, scope); break }
          for (const [key, item] of entries) {
            scope.push()
            if (node.pipe.decl.length === 1) scope.declare(node.pipe.decl[0] ?? '', item)
            if (node.pipe.decl.length === 2) { scope.declare(node.pipe.decl[0] ?? '', key); scope.declare(node.pipe.decl[1] ?? '', item) }
            out += execute(node.body, item, scope)
            scope.pop()
          }
          break
        }
      }
    }
    return out
  }

  const rendered = new Map<string, string>()
  const manifests: Manifest[] = []
  for (const [file, nodes] of files) {
    if (file.startsWith('_')) continue
    const data = { ...root, Template: { ...root.Template, Name: `${chartName}/templates/${file}` } }
    let text
    try {
      text = execute(nodes, data, new Scope(data))
    } catch (err) {
      throw new Error(`templates/${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
    rendered.set(`templates/${file}`, text)
    if (!file.endsWith('.yaml') && !file.endsWith('.yml')) continue
    let docs
    try {
      docs = yaml.loadAll(text)
    } catch (err) {
      throw new Error(`templates/${file} renders to YAML that does not parse: ${err instanceof Error ? err.message : String(err)}\n${text}`, { cause: err })
    }
    for (const doc of docs) {
      if (doc === null || doc === undefined) continue
      manifests.push(doc as Manifest)
    }
  }
  return { files: rendered, manifests }
}

/** Names of the templates a chart defines (`define`), over all its template files. */
export function definedTemplateNames (chartDir: string): Set<string> {
  const names = new Set<string>()
  for (const file of readdirSync(join(chartDir, 'templates'))) {
    for (const match of readFileSync(join(chartDir, 'templates', file), 'utf8').matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)) names.add(match[1] ?? '')
  }
  return names
}
