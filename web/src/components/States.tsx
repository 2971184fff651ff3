// The shared empty, loading and error displays, so every page says the same thing the same
// way. Owns wording and look of those states; never fetches or retries by itself.

import type { ComponentChildren } from 'preact';
import { ApiError } from '../api/client';
import { ROUTE_HASH } from '../router';

/** A readable sentence for any failure (ApiError messages come from the API or the client). */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.kind === 'unauthorized') {
      return 'tungate needs the admin token for this (HTTP 401). Sign in with the token from its state directory.';
    }
    return error.message;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

/** A "nothing here yet" panel with an optional action. */
export function EmptyState(props: { title: string; children?: ComponentChildren; testId?: string }) {
  return (
    <div class="empty" data-testid={props.testId}>
      <p class="empty-title">{props.title}</p>
      {props.children ? <div class="empty-body">{props.children}</div> : null}
    </div>
  );
}

/** A failed load: what went wrong, and a retry button when the caller can retry. */
export function ErrorState(props: { error: unknown; what: string; onRetry?: () => void; testId?: string }) {
  const { error } = props;
  const unreachable = error instanceof ApiError && error.kind === 'unreachable';
  const unauthorized = error instanceof ApiError && error.kind === 'unauthorized';
  return (
    <div
      class="alert alert-error"
      role="alert"
      data-testid={props.testId ?? 'load-error'}
      data-kind={error instanceof ApiError ? error.kind : 'other'}
    >
      <p class="alert-title">
        {unreachable
          ? `Cannot load ${props.what}: the tungate API is not answering`
          : unauthorized
            ? `Cannot load ${props.what}: sign-in needed`
            : `Cannot load ${props.what}`}
      </p>
      <p>{describeError(error)}</p>
      <div class="alert-actions">
        {props.onRetry ? (
          <button type="button" class="btn" onClick={props.onRetry}>
            Try again
          </button>
        ) : null}
        {unauthorized ? (
          <a class="btn btn-primary" href={ROUTE_HASH.login}>
            Sign in
          </a>
        ) : null}
      </div>
    </div>
  );
}

/** An inline "loading…" line that screen readers announce. */
export function Loading(props: { what: string }) {
  return (
    <p class="loading" role="status">
      Loading {props.what}…
    </p>
  );
}
