// ESLint flat config. The protocol core is IO-free by rule (STYLE.md rule 1) and the
// dependency direction beacon → protocol, peer → protocol is enforced here, not by review.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const ioModules = ['node:*', 'fs', 'net', 'http', 'crypto', 'libp2p', '@libp2p/*', '@chainsafe/*', 'pg', 'ioredis', '@electric-sql/*', 'fastify', 'pino']

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'deploy/**', 'helm/**', 'loadtest/k6/**', '.tmp/**'] },
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
          { group: ['**/beacon/**', '**/peer/**'], message: 'protocol must not depend on beacon or peer.' }
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
    files: ['services/peer/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        // The one exception: the overlay driver lives in beacon and the peer SDK reuses it.
        patterns: [{ regex: '(^|/)beacon/(?!src/overlay/)', message: 'peer depends on protocol (and the shared overlay driver), never on the rest of beacon.' }]
      }]
    }
  },
  {
    files: ['services/beacon/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/peer/**'], message: 'beacon depends on protocol only, never on peer.' }]
      }]
    }
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } }
  }
)
