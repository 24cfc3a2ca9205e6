// ESLint flat config: typescript-eslint's type-checked recommended rules for TypeScript (types from
// tsconfig.json through the project service; the .mjs/.js scripts are linted untyped), the house
// rules (no-shadow) and the layer boundaries of src/.
//
// Layers, lowest first; a folder may import its own files and the layers below it, never above:
//   lib/          shared leaves (clock, errors, logger, metrics, network errors, TLS): nothing else
//   config/       settings: lib/ only
//   token/        key, assertion, token endpoint, cache: lib/ only (never config/)
//   proxy/        the proxy: lib/, token/, and from config/ only its types and the pure ambiguity rule
//   admin/        the admin port: lib/, token/
//   upstream-stack.ts, lifecycle.ts, sidecar.ts   the wiring: any folder above, never commands/
//   commands/     check, demo, token, assertion: anything but cli.ts
//   cli.ts        the bin
// emulator/ (the LogicNets emulator for demo and the tests) imports lib/ only.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const entryPoints = {
  regex: '^\\.\\./(sidecar|cli|upstream-stack|lifecycle)\\.js$',
  message: 'A layer folder never imports the wiring or the entry points (src/*.ts); see eslint.config.js.',
};
const notAbove = (folders, why) => ({
  regex: `^\\.\\./(${folders.join('|')})/`,
  message: `${why}; see the layer order in eslint.config.js.`,
});
const boundary = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'helm/**', '.test-build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: {
        process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly',
        URLSearchParams: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
        setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly',
        AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly',
        TextDecoder: 'readonly', fetch: 'readonly', structuredClone: 'readonly',
      },
    },
    rules: {
      'no-shadow': 'off',
      '@typescript-eslint/no-shadow': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      // Passing on a rejection or abort reason as it came is fine (as only-throw-error allows for throw).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // node:test's test(), describe() and friends return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }],
      }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/consistent-type-imports': 'off' },
  },
  // Layer boundaries (one block per folder: a later block replaces an earlier one's options).
  {
    files: ['src/lib/**'],
    rules: boundary({ regex: '^\\.\\./', message: 'src/lib/ imports nothing else of the project; see eslint.config.js.' }),
  },
  {
    files: ['src/config/**'],
    rules: boundary(notAbove(['token', 'proxy', 'admin', 'commands', 'emulator'], 'src/config/ imports only lib/'), entryPoints),
  },
  {
    files: ['src/token/**'],
    rules: boundary(notAbove(['config', 'proxy', 'admin', 'commands', 'emulator'], 'src/token/ imports only lib/'), entryPoints),
  },
  {
    files: ['src/proxy/**'],
    rules: boundary(
      notAbove(['admin', 'commands', 'emulator'], 'src/proxy/ imports only lib/, token/ and config types'),
      {
        regex: '^\\.\\./config/(?!types\\.js$|ambiguity\\.js$)',
        message: 'src/proxy/ takes its settings as values: from config/ only types.ts and ambiguity.ts; see eslint.config.js.',
      },
      entryPoints,
    ),
  },
  {
    files: ['src/admin/**'],
    rules: boundary(notAbove(['config', 'proxy', 'commands', 'emulator'], 'src/admin/ imports only lib/ and token/'), entryPoints),
  },
  {
    files: ['src/emulator/**'],
    rules: boundary({ regex: '^\\.\\./(?!lib/)', message: 'src/emulator/ imports only lib/; see eslint.config.js.' }),
  },
  {
    files: ['src/commands/**'],
    rules: boundary({ regex: '^\\.\\./cli\\.js$', message: 'Nothing imports the bin (src/cli.ts); see eslint.config.js.' }),
  },
  {
    files: ['src/upstream-stack.ts', 'src/lifecycle.ts', 'src/sidecar.ts'],
    rules: boundary(
      { regex: '^\\./(commands|emulator)/', message: 'The wiring never imports commands/ or the emulator; see eslint.config.js.' },
      { regex: '^\\./cli\\.js$', message: 'Nothing imports the bin (src/cli.ts); see eslint.config.js.' },
    ),
  },
  {
    files: ['src/upstream-stack.ts', 'src/lifecycle.ts'],
    rules: boundary(
      { regex: '^\\./(commands|emulator)/', message: 'The wiring never imports commands/ or the emulator; see eslint.config.js.' },
      { regex: '^\\./(cli|sidecar)\\.js$', message: 'Parts of the wiring never import sidecar.ts or the bin; see eslint.config.js.' },
    ),
  },
);
