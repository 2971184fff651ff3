// Maps the API's validation errors onto form fields. The API names fields by path in the
// whole configuration document (`peers[0].address`, `vips[1].plugins[0].config`) or in the
// request body (`address`); a form says which path prefixes are its own and which fields it
// shows. Owns only that mapping: it must never drop a message — what no field claims goes to
// the form's general error list, with its path so the operator can still find it.

import type { ErrorDetail } from '../api/types';

/** One step of a field path: an object key or an array index. */
export type PathSegment = string | number;

/** A prefix pattern: `'*'` matches any array index. */
export type PrefixPattern = readonly (PathSegment | '*')[];

/**
 * Parses `peers[0].address`, `$.peers[0].address` or the JSON-pointer form
 * `/peers/0/address` into `['peers', 0, 'address']`. Unparseable text yields `[text]`.
 */
export function parseFieldPath(path: string): PathSegment[] {
  const trimmed = path.trim();
  if (trimmed === '') return [];
  if (trimmed.startsWith('/')) {
    return trimmed
      .slice(1)
      .split('/')
      .map((raw) => raw.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  }
  const body = trimmed.replace(/^\$\.?/, '');
  const segments: PathSegment[] = [];
  const pattern = /([^.[\]]+)|\[(\d+)\]|\[["']([^"']*)["']\]/g;
  let consumed = 0;
  for (const match of body.matchAll(pattern)) {
    const between = body.slice(consumed, match.index);
    if (between !== '' && between !== '.') return [trimmed];
    consumed = match.index + match[0].length;
    if (match[1] !== undefined) segments.push(match[1]);
    else if (match[2] !== undefined) segments.push(Number(match[2]));
    else if (match[3] !== undefined) segments.push(match[3]);
  }
  if (consumed !== body.length) return [trimmed];
  return segments;
}

/** Writes segments back as `peers[0].address`. */
export function formatFieldPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

/** A message attached to one form field; `rest` is the path below it (e.g. `[2]` of `vips`). */
export interface FieldMessage {
  message: string;
  rest: PathSegment[];
}

/** The outcome of mapping: per-field messages and those no field claimed. */
export interface MappedErrors {
  fields: Record<string, FieldMessage[]>;
  general: string[];
}

/** Which paths a form owns. */
export interface FormScope {
  /** Path prefixes of the form's object, most specific first (`[]` = the request body). */
  prefixes: readonly PrefixPattern[];
  /**
   * The fields the form shows, by their key under the prefix, each with how deep a path
   * below it can go (`vips: 1` claims `vips[2]` but not `vips[2].address`, which belongs to
   * the document's VIP list). Deeper paths are not the field's: they go to general.
   */
  fields: Readonly<Record<string, number>>;
}

/** The parts of an API error the mapping reads (an `ApiError` fits). */
export interface ErrorFields {
  message: string;
  field?: string | null;
  details?: readonly ErrorDetail[];
}

/** Sorts the error's message and details into the form's fields and a general list. */
export function mapFieldErrors(error: ErrorFields, scope: FormScope): MappedErrors {
  const result: MappedErrors = { fields: {}, general: [] };
  const entries: ErrorDetail[] = [];
  if (error.field) entries.push({ field: error.field, message: error.message });
  else result.general.push(error.message);
  for (const detail of error.details ?? []) {
    const duplicate = entries.some((e) => e.field === detail.field && e.message === detail.message);
    if (!duplicate) entries.push(detail);
  }

  for (const entry of entries) {
    const segments = parseFieldPath(entry.field);
    const claimed = claim(segments, scope);
    if (claimed) {
      (result.fields[claimed.field] ??= []).push({ message: entry.message, rest: claimed.rest });
    } else {
      const where = entry.field.trim();
      result.general.push(where ? `${where}: ${entry.message}` : entry.message);
    }
  }
  return result;
}

function claim(
  segments: readonly PathSegment[],
  scope: FormScope,
): { field: string; rest: PathSegment[] } | null {
  for (const prefix of scope.prefixes) {
    if (!startsWith(segments, prefix)) continue;
    const rest = segments.slice(prefix.length);
    const head = rest[0];
    const depth = typeof head === 'string' ? scope.fields[head] : undefined;
    if (
      typeof head === 'string' &&
      depth !== undefined &&
      Object.hasOwn(scope.fields, head) &&
      rest.length - 1 <= depth
    ) {
      return { field: head, rest: rest.slice(1) };
    }
  }
  return null;
}

function startsWith(segments: readonly PathSegment[], prefix: PrefixPattern): boolean {
  if (prefix.length > segments.length) return false;
  return prefix.every((want, i) => {
    const have = segments[i];
    return want === '*' ? typeof have === 'number' : want === have;
  });
}
