// ESLint flat config. The protocol core is IO-free by rule (STYLE.md rule 1) and the
// dependency direction beacon → net → protocol, peer → net → protocol is enforced here, not by review
// (services/net/test/package-graph.test.ts lints one import per edge of the graph).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const ioModules = ['node:*', 'fs', 'net', 'http', 'crypto', 'libp2p', '@libp2p/*', '@chainsafe/*', 'pg', 'ioredis', '@electric-sql/*', 'fastify', 'pino']

const packages = ['protocol', 'net', 'beacon', 'peer', 'testing']

/** The import groups of every package but `self` and the ones `allowed`. */
function otherPackages (self, ...allowed) {
  return packages.filter((name) => name !== self && !allowed.includes(name)).flatMap((name) => [`@pharos/${name}`, `@pharos/${name}/**`])
}

/**
 * One no-restricted-imports rule for `files`. Flat config replaces a rule's options per
 * matching block instead of merging them, so every block repeats the cross-package path rule.
 */
function packageImports (files, patterns) {
  return {
    files,
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: '^(\\.\\./)+(protocol|net|beacon|peer|testing)/(src|test|bin|sim|examples)/', message: 'import another package by its name (@pharos/<package>/…), not by a path into it.' },
          ...patterns
        ]
      }]
    }
  }
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'deploy/!(test)/**', 'helm/**', 'loadtest/k6/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      // node:test's describe/it return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }]
      }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error'
    }
  },
  {
    // CLIs, scripts, benchmarks and tests talk to a terminal.
    files: ['**/cli/**', '**/bin/**', '**/examples/**', 'scripts/**', 'bench/**', 'loadtest/**', '**/test/**', '**/sim/**'],
    rules: { 'no-console': 'off' }
  },
  {
    // Benchmarks, load tests and scripts sit outside the packages: they import them by name too.
    files: ['bench/**/*.ts', 'loadtest/**/*.ts', 'scripts/**/*.ts', 'deploy/test/**/*.ts', 'patches/test/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^(\\.\\./)+services/[^/]+/src/', message: 'import a package by its name (@pharos/<package>/…), not by a path into its sources.' }]
      }]
    }
  },
  // Every package imports another by its name (@pharos/<package>/…), never by a path into it.
  packageImports(['services/**/*.ts'], []),
  packageImports(['services/protocol/src/**/*.ts', 'services/protocol/sim/**/*.ts'], [
    { group: ioModules, message: 'services/protocol does no I/O (STYLE.md rule 1).' },
    { group: otherPackages('protocol'), message: 'protocol must not depend on net, beacon, peer or testing.' }
  ]),
  {
    files: ['services/protocol/src/**/*.ts', 'services/protocol/sim/**/*.ts'],
    rules: {
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Time is injected into the protocol core.' },
        { object: 'Math', property: 'random', message: 'Randomness is injected (seeded RNG).' }
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Time is injected into the protocol core.' }
      ]
    }
  },
  // The libp2p side that beacon and peer share: protocol and the libp2p stack, nothing else.
  packageImports(['services/net/src/**/*.ts'], [
    { group: otherPackages('net', 'protocol'), message: 'net is shared by beacon and peer: it depends on protocol and libp2p only.' },
    { regex: '^(?!\\.|@libp2p/|@multiformats/|multiformats|node:|@pharos/)', message: 'net imports protocol, @libp2p/* and multiformats only (no databases, no HTTP, no Redis).' }
  ]),
  // Test helpers every package's tests share: they start workers and servers as processes
  // and never import a service's code, so any package's tests may use them.
  packageImports(['services/testing/**/*.ts'], [
    { group: otherPackages('testing'), message: 'services/testing starts services as processes; it imports none of their code.' }
  ]),
  packageImports(['services/peer/**/*.ts'], [
    { group: ['@pharos/beacon', '@pharos/beacon/**'], message: 'peer depends on protocol and net, never on beacon.' }
  ]),
  packageImports(['services/beacon/src/**/*.ts'], [
    { group: ['@pharos/peer', '@pharos/peer/**', '@pharos/testing', '@pharos/testing/**'], message: 'beacon depends on protocol and net, never on peer (or on test helpers).' }
  ]),
  // The metrics registry and generic samplers. Each area keeps its own metrics and label
  // sets beside its code (logs/log-metrics.ts, …), so metrics/ knows no domain. It comes
  // after the beacon's block, whose rule it replaces for these files (flat config).
  packageImports(['services/beacon/src/metrics/**/*.ts'], [
    { group: ['@pharos/peer', '@pharos/peer/**', '@pharos/testing', '@pharos/testing/**'], message: 'beacon depends on protocol and net, never on peer.' },
    { regex: '^\\.\\./(?!config/)', message: 'metrics/ imports no domain code (only config): put a metric beside the area it measures.' }
  ]),
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } }
  }
)
