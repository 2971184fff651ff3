// Number, size, duration and time formatting for everything the UI displays. Pure functions
// with fixed rules (3 significant digits, SI prefixes for rates, binary prefixes for file
// sizes) so moving numbers stay readable and tests can pin every case. Never locale-guessing:
// the output is the same on every operator's browser.

const SI_PREFIXES = ['', 'k', 'M', 'G', 'T', 'P', 'E'] as const;
const BINARY_PREFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti'] as const;

/** Placeholder shown where a number is not known (yet). */
export const UNKNOWN = '—';

/**
 * Scales `value` by powers of `base` to 3 significant digits: returns the mantissa text and
 * the index of the prefix. Values under `base` keep up to 3 significant digits without
 * padding (`950`, `12.5`, `0.25`); scaled ones keep trailing zeros so width stays steady.
 */
function scale(value: number, base: number, maxIndex: number): { text: string; index: number } {
  const sign = value < 0 ? '-' : '';
  let magnitude = Math.abs(value);
  if (magnitude < base) {
    const text = Number.isInteger(magnitude) ? String(magnitude) : String(Number(magnitude.toPrecision(3)));
    // Rounding 999.95 to 3 digits gives 1000: fall through to the scaled form then.
    if (Number(text) < base) return { text: sign + text, index: 0 };
  }
  let index = 0;
  while (magnitude >= base && index < maxIndex) {
    magnitude /= base;
    index += 1;
  }
  let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2;
  let text = magnitude.toFixed(decimals);
  if (Number(text) >= base && index < maxIndex) {
    magnitude /= base;
    index += 1;
    decimals = 2;
    text = magnitude.toFixed(decimals);
  }
  return { text: sign + text, index };
}

/** `1234567, 'pps'` → `1.23 Mpps`; `950, 'bit/s'` → `950 bit/s`; unknown → `—`. */
export function formatSI(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return UNKNOWN;
  const { text, index } = scale(value, 1000, SI_PREFIXES.length - 1);
  return `${text} ${SI_PREFIXES[index]}${unit}`.trimEnd();
}

/** Packets per second, e.g. `45.6 kpps`. */
export function formatPps(value: number | null | undefined): string {
  return formatSI(value, 'pps');
}

/** Bits per second, e.g. `1.20 Mbit/s`. */
export function formatBitRate(value: number | null | undefined): string {
  return formatSI(value, 'bit/s');
}

/** A counter, compact: `1.23 M`, `950`. */
export function formatCount(value: number | null | undefined): string {
  return formatSI(value, '');
}

/** A counter in full with thousands separators: `1,234,567`. */
export function formatInteger(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return UNKNOWN;
  const sign = value < 0 ? '-' : '';
  const digits = String(Math.round(Math.abs(value)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A size in bytes with binary prefixes: `512 B`, `1.50 KiB`, `2.00 MiB`. */
export function formatBytes(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return UNKNOWN;
  const { text, index } = scale(value, 1024, BINARY_PREFIXES.length - 1);
  return `${text} ${BINARY_PREFIXES[index]}B`;
}

/** An uptime: `42 s`, `5 min 03 s`, `3 h 04 min`, `2 d 03 h`. */
export function formatDuration(totalSeconds: number | null | undefined): string {
  if (totalSeconds === null || totalSeconds === undefined || !Number.isFinite(totalSeconds)) {
    return UNKNOWN;
  }
  const s = Math.max(0, Math.floor(totalSeconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (days > 0) return `${days} d ${two(hours)} h`;
  if (hours > 0) return `${hours} h ${two(minutes)} min`;
  if (minutes > 0) return `${minutes} min ${two(seconds)} s`;
  return `${seconds} s`;
}

/** A local date and time to the minute: `2025-03-07 14:05`. */
export function formatDateTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ` +
    `${two(date.getHours())}:${two(date.getMinutes())}`
  );
}

/** How long ago, coarse: `just now`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function formatAgo(thenMs: number, nowMs: number): string {
  const seconds = Math.round((nowMs - thenMs) / 1000);
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** The first 12 hex digits of a sha256, enough to tell modules apart at a glance. */
export function shortHash(sha256: string): string {
  return sha256.length > 12 ? sha256.slice(0, 12) : sha256;
}

/** Abbreviations written in capitals when a machine word becomes a label. */
const ACRONYMS: Record<string, string> = Object.fromEntries(
  [
    'vip',
    'ttl',
    'ip',
    'ipip',
    'gre',
    'gue',
    'icmp',
    'tcp',
    'udp',
    'cidr',
    'abi',
    'gso',
    'mtu',
    'rs',
    'gip',
    'rip',
  ].flatMap((word) => [
    [word, word.toUpperCase()],
    [`${word}s`, `${word.toUpperCase()}s`],
  ]),
);

/** Turns a machine word (`bad_checksum`, `not-a-vip`) into words for a label: `Not a VIP`. */
export function humanize(key: string): string {
  const words = key
    .replace(/[_-]+/g, ' ')
    .trim()
    .split(/\s+/)
    .map((word) => ACRONYMS[word.toLowerCase()] ?? word);
  const text = words.join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A share as a percentage with two significant decimals: `0.04 %`, `12.5 %`; unknown `—`. */
export function formatPercent(part: number | null | undefined, whole: number | null | undefined): string {
  if (part == null || whole == null || !Number.isFinite(part) || !Number.isFinite(whole) || whole <= 0) {
    return UNKNOWN;
  }
  const percent = (100 * part) / whole;
  if (percent === 0) return '0 %';
  return `${percent >= 10 ? percent.toFixed(1) : Number(percent.toPrecision(2))} %`;
}
