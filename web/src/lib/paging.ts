// Paging and address search for long lists (10 000 VIPs): which slice of a list one page
// shows, and whether an address matches what the operator typed. Pure: no DOM, no state.

/** Rows per page of a long list. */
export const PAGE_SIZE = 50;

/** One page of a list. */
export interface Page<T> {
  /** The rows of this page. */
  items: T[];
  /** This page's index (0-based), clamped to the pages there are. */
  page: number;
  /** How many pages there are (at least 1). */
  pages: number;
  /** Index of the first row shown (0-based). */
  first: number;
  /** How many rows there are in all. */
  total: number;
}

/** Page `page` of `items`, `size` rows a page; a page past the end shows the last one. */
export function pageOf<T>(items: readonly T[], page: number, size: number = PAGE_SIZE): Page<T> {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const at = Math.min(Math.max(0, Math.floor(page)), pages - 1);
  const first = at * size;
  return { items: items.slice(first, first + size), page: at, pages, first, total: items.length };
}

/**
 * Whether `address` matches the search `query`: the query's text (spaces ignored) is part
 * of the address, so `192.0.2.` lists a /24 and a full address finds exactly that one. An
 * empty query matches everything.
 */
export function addressMatches(address: string, query: string): boolean {
  const needle = query.replace(/\s+/g, '');
  return needle === '' || address.includes(needle);
}
