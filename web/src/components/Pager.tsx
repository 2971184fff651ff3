// The search box and page buttons above a long list (e.g. 10 000 VIPs): the caller keeps
// the query and page and renders only the page's rows (lib/paging). Layout only.

import type { Page } from '../lib/paging';
import { formatInteger } from '../lib/format';

/** Search by address and move between pages; `testId` prefixes the controls' test ids. */
export function Pager<T>(props: {
  page: Page<T>;
  query: string;
  onQuery: (query: string) => void;
  onPage: (page: number) => void;
  /** What a row is, for labels ("VIPs"). */
  what: string;
  testId: string;
}) {
  const { page } = props;
  const last = page.first + page.items.length;
  return (
    <div class="pager" data-testid={props.testId}>
      <label class="pager-search">
        <span class="sr-only">Search {props.what} by address</span>
        <input
          type="search"
          class="mono"
          placeholder="Search by address"
          value={props.query}
          onInput={(e) => props.onQuery(e.currentTarget.value)}
          data-testid={`${props.testId}-search`}
        />
      </label>
      <span class="pager-count muted small" data-testid={`${props.testId}-count`} data-value={page.total}>
        {page.total === 0
          ? `no ${props.what}`
          : `${formatInteger(page.first + 1)}–${formatInteger(last)} of ${formatInteger(page.total)}`}
      </span>
      {page.pages > 1 ? (
        <span class="pager-buttons">
          <button
            type="button"
            class="btn btn-small"
            disabled={page.page === 0}
            onClick={() => props.onPage(page.page - 1)}
            aria-label={`Previous page of ${props.what}`}
            data-testid={`${props.testId}-prev`}
          >
            ‹ Prev
          </button>
          <button
            type="button"
            class="btn btn-small"
            disabled={page.page >= page.pages - 1}
            onClick={() => props.onPage(page.page + 1)}
            aria-label={`Next page of ${props.what}`}
            data-testid={`${props.testId}-next`}
          >
            Next ›
          </button>
        </span>
      ) : null}
    </div>
  );
}
