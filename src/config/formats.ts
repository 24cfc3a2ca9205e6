/**
 * The strict formats of the settings, registered with convict (`convict.addFormat`, `coerce` and
 * `validate`): a value is either read exactly or refused with a sentence saying what is wrong,
 * never cut short the way `parseInt`/`parseFloat` would (`1m` as 1, `28082x` as 28082).
 *
 * - `seconds`, `seconds-or-zero`, `whole-seconds`: a duration, plain seconds (`30`, `0.5`) or a
 *   number with a unit (`500ms`, `30s`, `1m`, `1h`); the value is kept in seconds.
 * - `bytes`: a size, plain bytes (`65536`) or a number with a binary unit (`B`, `KiB`, `MiB`,
 *   `GiB`); `kB`, `KB`, `MB` and `GB` are refused with a hint, since they are read both as powers
 *   of 1000 and of 1024.
 * - `count`: a whole number of things, digits only.
 * - `tcp-port`: digits only, 0 to 65535.
 * - `strict-boolean`: `true`/`false` (or `1`/`0`), any case.
 *
 * A schema item may narrow a numeric format with `min` and `max` (inclusive); convict hands the
 * item to `validate`. Environment values are strings and go through `coerce`; a config file's
 * numbers and booleans reach `validate` as they are (YAML `30` and `"30s"` both work). Pure.
 */
import convict from 'convict';

/** Node's timers fire at once (with a warning) beyond 2^31-1 ms: the longest duration accepted. */
export const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A schema item as the formats read it: convict passes it to `validate` as its second argument. */
export interface FormatItem {
  readonly format?: unknown;
  /** A sensitive value is never shown in a message. */
  readonly sensitive?: boolean;
  readonly min?: number;
  readonly max?: number;
}

/** The outcome of reading one value: the number, or what is wrong with it. */
type Read = { ok: true; value: number } | { ok: false; problem: string };

interface NumericFormat {
  /** What the setting is, for messages: "a duration", "a size in bytes", ... */
  readonly what: string;
  /** Examples of accepted text, for messages. */
  readonly examples: string;
  /** Reads text (already trimmed); the number is checked against bounds afterwards. */
  read(text: string): Read;
  /** Lowest value when the item sets no `min`; `exclusive` when the bound itself is refused. */
  readonly min: { value: number; exclusive: boolean };
  readonly max: number;
  /** Whether the value must be a whole number. */
  readonly whole: boolean;
  /** The unit a bare number is in, for messages ("seconds", "bytes", ""). */
  readonly unit: string;
}

const DURATION_UNITS: Readonly<Record<string, [number, number]>> = {
  // [numerator, denominator] of seconds per unit
  ms: [1, 1000], s: [1, 1], m: [60, 1], h: [3600, 1],
};
const SIZE_UNITS: Readonly<Record<string, number>> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
const DECIMAL_SIZE_UNITS = new Set(['kB', 'KB', 'MB', 'GB', 'kb', 'Kb', 'mb', 'Mb', 'gb', 'Gb']);

/**
 * Reads `digits[.digits]` followed by a suffix, exactly: the number is kept as a fraction of two
 * integers, so `1.1m` is 66 and `100ms` is the double nearest 0.1, with no rounding on the way.
 */
function readDecimal(text: string): { numerator: bigint; scale: bigint; suffix: string } | 'syntax' | 'too-long' {
  if (text.length > 40) return 'too-long';
  const match = /^(\d+)(?:\.(\d+))?([A-Za-z]*)$/.exec(text);
  if (match === null) return 'syntax';
  const whole = match[1] ?? '';
  const fraction = match[2] ?? '';
  return { numerator: BigInt(`${whole}${fraction}`), scale: 10n ** BigInt(fraction.length), suffix: match[3] ?? '' };
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/**
 * The double nearest `numerator / denominator`: reduced first, both then exact as doubles, so one
 * division rounds once. A fraction too long for that is refused ("too many digits"), never rounded twice.
 */
function quotient(numerator: bigint, denominator: bigint): Read {
  const divisor = gcd(numerator, denominator) || 1n;
  const p = numerator / divisor;
  const q = denominator / divisor;
  if (p > SAFE || q > SAFE) return { ok: false, problem: 'too many digits' };
  return { ok: true, value: Number(p) / Number(q) };
}

const duration = (): Pick<NumericFormat, 'what' | 'examples' | 'read' | 'unit'> => ({
  what: 'a duration',
  examples: 'seconds such as 30 or 0.5, or a number with a unit: 500ms, 30s, 1m, 1h',
  unit: 'seconds',
  read(text) {
    const parsed = readDecimal(text);
    if (parsed === 'too-long') return { ok: false, problem: 'too many digits' };
    if (parsed === 'syntax') return { ok: false, problem: '' };
    const unit = parsed.suffix === '' ? 's' : parsed.suffix;
    const factor = DURATION_UNITS[unit];
    if (factor === undefined) return { ok: false, problem: `unknown unit "${parsed.suffix}"` };
    return quotient(parsed.numerator * BigInt(factor[0]), parsed.scale * BigInt(factor[1]));
  },
});

const digitsOnly = (what: string): Pick<NumericFormat, 'what' | 'read' | 'unit' | 'whole'> => ({
  what,
  unit: '',
  whole: true,
  read(text) {
    if (!/^\d+$/.test(text)) return { ok: false, problem: '' };
    if (text.length > 40) return { ok: false, problem: 'too many digits' };
    return quotient(BigInt(text), 1n);
  },
});

const NUMERIC: Readonly<Record<string, NumericFormat>> = {
  seconds: { ...duration(), min: { value: 0, exclusive: true }, max: MAX_SECONDS, whole: false },
  'seconds-or-zero': { ...duration(), min: { value: 0, exclusive: false }, max: MAX_SECONDS, whole: false },
  'whole-seconds': { ...duration(), min: { value: 0, exclusive: true }, max: MAX_SECONDS, whole: true },
  bytes: {
    what: 'a size',
    examples: 'bytes such as 65536, or a number with a unit: 512KiB, 1MiB, 1GiB',
    unit: 'bytes',
    whole: true,
    min: { value: 0, exclusive: false },
    max: Number.MAX_SAFE_INTEGER,
    read(text) {
      const parsed = readDecimal(text);
      if (parsed === 'too-long') return { ok: false, problem: 'too many digits' };
      if (parsed === 'syntax') return { ok: false, problem: '' };
      if (DECIMAL_SIZE_UNITS.has(parsed.suffix)) {
        return { ok: false, problem: `"${parsed.suffix}" is read both as 1000 and as 1024 bytes: write the binary unit (KiB, MiB, GiB) or plain bytes` };
      }
      const factor = SIZE_UNITS[parsed.suffix === '' ? 'B' : parsed.suffix];
      if (factor === undefined) return { ok: false, problem: `unknown unit "${parsed.suffix}"` };
      return quotient(parsed.numerator * BigInt(factor), parsed.scale);
    },
  },
  count: { ...digitsOnly('a whole number'), examples: 'digits only, such as 200', min: { value: 1, exclusive: false }, max: Number.MAX_SAFE_INTEGER },
  'tcp-port': { ...digitsOnly('a port number'), examples: 'digits only', min: { value: 0, exclusive: false }, max: 65535 },
};

/** The names of the strict numeric formats. */
export const NUMERIC_FORMATS: readonly string[] = Object.keys(NUMERIC);

/** Reads a numeric setting's text or file value into its number, or says what is wrong. */
function readNumeric(format: NumericFormat, value: unknown): Read {
  if (typeof value === 'string') {
    const text = value.trim();
    if (text === '') return { ok: false, problem: 'it is empty' };
    return format.read(text);
  }
  if (typeof value === 'number') {
    return Number.isFinite(value) ? { ok: true, value } : { ok: false, problem: '' };
  }
  if (value === null || value === undefined) return { ok: false, problem: 'it has no value' };
  return { ok: false, problem: '' };
}

function describeBounds(format: NumericFormat, min: number, exclusive: boolean, max: number): string {
  const unit = format.unit === '' ? '' : ` ${format.unit}`;
  if (format.whole && format.unit === 'seconds') {
    const range = max >= Number.MAX_SAFE_INTEGER ? `${exclusive ? min + 1 : min} or more` : `from ${exclusive ? min + 1 : min} to ${max}`;
    return `a whole number of seconds ${range}`;
  }
  if (max >= Number.MAX_SAFE_INTEGER) return exclusive ? `greater than ${min}${unit}` : `${min}${unit} or more`;
  return exclusive ? `greater than ${min} and at most ${max}${unit}` : `from ${min} to ${max}${unit}`;
}

/** `value` shown in a message: short, quoted, control characters escaped; never a sensitive one. */
function shown(value: unknown, item: FormatItem = {}): string {
  if (item.sensitive === true) return 'the value given';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 37)}..."` : text;
}

/**
 * What is wrong with `value` for the schema `item` of a strict numeric format, or `undefined`
 * when it is fine (an already-read number within bounds). Not for other formats.
 */
function numericProblem(name: string, value: unknown, item: FormatItem): string | undefined {
  const format = NUMERIC[name];
  if (format === undefined) return undefined;
  const read = readNumeric(format, value);
  const min = item.min ?? format.min.value;
  const exclusive = item.min === undefined ? format.min.exclusive : false;
  const max = item.max ?? format.max;
  if (!read.ok) return `must be ${format.what} (${format.examples}), not ${shown(value, item)}${read.problem === '' ? '' : `: ${read.problem}`}`;
  const n = read.value;
  const as = typeof value === 'string' && String(n) !== value.trim() ? ` (${n}${format.unit === '' ? '' : ` ${format.unit}`})` : '';
  if (format.whole && !Number.isInteger(n)) {
    return `must be a whole number${format.unit === '' ? '' : ` of ${format.unit}`}, not ${shown(value, item)}${as}`;
  }
  if (n < min || (exclusive && n === min) || n > max) {
    return `must be ${describeBounds(format, min, exclusive, max)}, not ${shown(value, item)}${as}`;
  }
  return undefined;
}

function booleanProblem(value: unknown, item: FormatItem = {}): string | undefined {
  return typeof value === 'boolean' ? undefined : `must be true or false (or 1 or 0), not ${shown(value, item)}`;
}

/**
 * What is wrong with a setting's value for its schema item, or `undefined` when it is fine. Covers
 * the strict formats, `String` (text only: a YAML number for a text setting is refused rather
 * than guessed), an enumeration (an array of allowed values) and `Array`. Other formats are left
 * to convict's own `validate`.
 */
export function settingProblem(item: FormatItem, value: unknown): string | undefined {
  const format = item.format;
  if (typeof format === 'string') {
    if (format === 'strict-boolean') return booleanProblem(value, item);
    return numericProblem(format, value, item);
  }
  if (format === String) {
    if (typeof value === 'string') return undefined;
    return `must be text, not ${shown(value, item)}${typeof value === 'number' || typeof value === 'boolean' ? ' (quote it in the config file)' : ''}`;
  }
  if (format === Array) return Array.isArray(value) ? undefined : 'must be a list';
  if (Array.isArray(format)) {
    return format.includes(value) ? undefined : `must be one of ${format.join(', ')}, not ${shown(value, item)}`;
  }
  return undefined;
}

/**
 * Reads `value` with a strict numeric format: the number, or `undefined` when it is refused
 * (`settingProblem` says why). For tests and callers outside convict.
 */
export function readSetting(format: string, value: unknown, item: Omit<FormatItem, 'format'> = {}): number | undefined {
  const numeric = NUMERIC[format];
  if (numeric === undefined) throw new Error(`${format} is not a numeric format`);
  if (numericProblem(format, value, { ...item, format }) !== undefined) return undefined;
  const read = readNumeric(numeric, value);
  return read.ok ? read.value : undefined;
}

/** convict's coerce: the number when the text reads, else the text unchanged for `validate` to refuse. */
function coerceNumeric(format: NumericFormat): (value: unknown) => unknown {
  return (value) => {
    const read = readNumeric(format, value);
    // Text that reads but is no whole number where one is needed stays text, so the message shows it as written.
    return read.ok && (!format.whole || Number.isInteger(read.value)) ? read.value : value;
  };
}

convict.addFormat({
  name: 'strict-boolean',
  validate(value: unknown, item: FormatItem) {
    const problem = booleanProblem(value, item);
    if (problem !== undefined) throw new Error(problem);
  },
  coerce(value: unknown) {
    const word = String(value).trim().toLowerCase();
    if (word === 'true' || word === '1') return true;
    if (word === 'false' || word === '0') return false;
    return value;
  },
});

for (const [name, format] of Object.entries(NUMERIC)) {
  convict.addFormat({
    name,
    validate(value: unknown, item: FormatItem) {
      const problem = numericProblem(name, value, item);
      if (problem !== undefined) throw new Error(problem);
    },
    coerce: coerceNumeric(format),
  });
}

/**
 * A setting's value as text: a scalar as `String` gives it, a list comma-separated, anything else
 * as JSON; `''` for none. Pure.
 */
export function settingText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(settingText).join(',');
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  return JSON.stringify(value) ?? '';
}
