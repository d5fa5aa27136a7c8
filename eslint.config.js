// ESLint flat config. The protocol core is IO-free by rule (STYLE.md rule 1) and the
// dependency direction beacon → net → protocol, peer → net → protocol is enforced here, not by review.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const ioModules = ['node:*', 'fs', 'net', 'http', 'crypto', 'libp2p', '@libp2p/*', '@chainsafe/*', 'pg', 'ioredis', '@electric-sql/*', 'fastify', 'pino']

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
    files: ['services/protocol/src/**/*.ts', 'services/protocol/sim/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ioModules, message: 'services/protocol does no I/O (STYLE.md rule 1).' },
          { group: ['**/beacon/**', '**/peer/**', '**/net/**'], message: 'protocol must not depend on net, beacon or peer.' }
        ]
      }],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Time is injected into the protocol core.' },
        { object: 'Math', property: 'random', message: 'Randomness is injected (seeded RNG).' }
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Time is injected into the protocol core.' }
      ]
    }
  },
  {
    // The libp2p side that beacon and peer share: protocol and the libp2p stack, nothing else.
    files: ['services/net/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/beacon/**', '**/peer/**'], message: 'net is shared by beacon and peer: it depends on protocol and libp2p only.' },
          { regex: '^(?!\\.|@libp2p/|@multiformats/|multiformats|node:)', message: 'net imports protocol, @libp2p/* and multiformats only (no databases, no HTTP, no Redis).' }
        ]
      }]
    }
  },
  {
    // Test helpers every package's tests share: they start workers and servers as processes
    // and never import a service's code, so any package's tests may use them.
    files: ['services/testing/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/beacon/**', '**/peer/**', '**/net/**'], message: 'services/testing starts services as processes; it imports none of their code.' }]
      }]
    }
  },
  {
    files: ['services/peer/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '(^|/)beacon/', message: 'peer depends on protocol and net, never on beacon.' }]
      }]
    }
  },
  {
    files: ['services/beacon/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/peer/**'], message: 'beacon depends on protocol and net, never on peer.' }]
      }]
    }
  },
  {
    // The metrics registry and generic samplers. Each area keeps its own metrics and label
    // sets beside its code (logs/log-metrics.ts, …), so metrics/ knows no domain. It comes
    // after the beacon's block, whose rule it replaces for these files (flat config).
    files: ['services/beacon/src/metrics/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/peer/**'], message: 'beacon depends on protocol and net, never on peer.' },
          { regex: '^\\.\\./(?!config/)', message: 'metrics/ imports no domain code (only config): put a metric beside the area it measures.' }
        ]
      }]
    }
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } }
  }
)
