/**
 * Prints the settings table of the README from the convict schema (src/config.ts), between the
 * markers `<!-- settings:start -->` and `<!-- settings:end -->`. `--write` updates README.md in place.
 * Run: npm run settings-table [-- --write]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { settingsDoc } from '../src/config/load.js';

export const START = '<!-- settings:start -->';
export const END = '<!-- settings:end -->';

/** The markdown table of every setting. */
export function settingsTable(): string {
  const rows = settingsDoc().map((s) =>
    `| \`${s.env}\` | ${s.scope === 'upstream' ? `\`${s.key}\`` : s.key === 'configFile' ? '(`--config`)' : `\`${s.key}\``} | ${s.doc.replace(/\|/g, '\\|')} | ${s.default} |`);
  return ['| environment variable | config file key | meaning | default |', '|---|---|---|---|', ...rows].join('\n');
}

/** README text with the table between the markers replaced. */
export function withTable(readme: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start === -1 || end === -1) throw new Error(`README.md lacks the ${START} / ${END} markers`);
  return `${readme.slice(0, start + START.length)}\n${settingsTable()}\n${readme.slice(end)}`;
}

if (process.argv[1]?.endsWith('settings-table.ts')) {
  if (process.argv.includes('--write')) {
    writeFileSync('README.md', withTable(readFileSync('README.md', 'utf8')));
  } else {
    process.stdout.write(`${settingsTable()}\n`);
  }
}
