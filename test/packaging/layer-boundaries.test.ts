// The lint run enforces the layer order of src/ (eslint.config.js). Each case lints a small file,
// in memory, at a path inside a folder: the upward import must fail with no-restricted-imports, and
// an allowed import from the same place must pass, so the check cannot pass vacuously.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

// The project's own config; the probe files exist only in memory, so without type information.
const eslint = new ESLint({ overrideConfig: [tseslint.configs.disableTypeChecked] });

/** The no-restricted-imports messages ESLint gives for `source` as if it were the file at `path`. */
async function boundaryErrors(path: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${source}\nexport const probe = value;\n`, { filePath: path });
  assert.ok(result, `no lint result for ${path}`);
  const fatal = result.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], `${path} did not parse`);
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const cases: { folder: string; path: string; forbidden: string[]; allowed: string }[] = [
  {
    folder: 'lib', path: 'src/lib/probe.ts',
    forbidden: ['../config/types.js', '../token/token.js', '../proxy/server.js', '../sidecar.js'],
    allowed: './errors.js',
  },
  {
    folder: 'config', path: 'src/config/probe.ts',
    forbidden: ['../token/endpoint.js', '../proxy/router.js', '../admin/server.js', '../commands/check.js', '../sidecar.js'],
    allowed: '../lib/errors.js',
  },
  {
    folder: 'token', path: 'src/token/probe.ts',
    forbidden: ['../config/load.js', '../config/types.js', '../proxy/server.js', '../admin/server.js', '../commands/check.js', '../upstream-stack.js', '../cli.js'],
    allowed: '../lib/errors.js',
  },
  {
    folder: 'proxy', path: 'src/proxy/probe.ts',
    forbidden: ['../config/load.js', '../admin/server.js', '../commands/check.js', '../emulator/emulator.js', '../sidecar.js'],
    allowed: '../config/types.js',
  },
  {
    folder: 'admin', path: 'src/admin/probe.ts',
    forbidden: ['../proxy/server.js', '../config/load.js', '../commands/check.js', '../sidecar.js'],
    allowed: '../token/token.js',
  },
  {
    folder: 'emulator', path: 'src/emulator/probe.ts',
    forbidden: ['../token/assertion.js', '../config/types.js', '../proxy/server.js', '../sidecar.js'],
    allowed: '../lib/clock.js',
  },
  {
    folder: 'commands', path: 'src/commands/probe.ts',
    forbidden: ['../cli.js'],
    allowed: '../sidecar.js',
  },
  {
    folder: 'wiring', path: 'src/upstream-stack.ts',
    forbidden: ['./sidecar.js', './cli.js', './commands/check.js', './emulator/emulator.js'],
    allowed: './token/cache.js',
  },
  {
    folder: 'sidecar', path: 'src/sidecar.ts',
    forbidden: ['./cli.js', './commands/dispatch.js'],
    allowed: './lifecycle.js',
  },
];

for (const { folder, path, forbidden, allowed } of cases) {
  test(`lint fails when src/${folder === 'wiring' || folder === 'sidecar' ? path.slice(4) : `${folder}/`} imports a higher layer`, async () => {
    for (const target of forbidden) {
      const errors = await boundaryErrors(path, `import { value } from '${target}';`);
      assert.equal(errors.length, 1, `${path} importing ${target} should fail lint: ${JSON.stringify(errors)}`);
      assert.match(errors[0]!, /eslint\.config\.js/);
      // A type-only import crosses the boundary too.
      const typeErrors = await boundaryErrors(path, `import type { value } from '${target}';`);
      assert.equal(typeErrors.length, 1, `${path} importing a type from ${target} should fail lint`);
    }
    assert.deepEqual(await boundaryErrors(path, `import { value } from '${allowed}';`), [], `${path} may import ${allowed}`);
  });
}
