// Holds the admin bearer token for this browser tab: in memory, mirrored to sessionStorage so
// a reload keeps the session. It must never put the token anywhere else (no URL, no
// localStorage, no cookie, no log line).

const STORAGE_KEY = 'tungate.admin-token';

/** The subset of the Web Storage API the store needs (sessionStorage in the browser). */
export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The admin token of this tab, with change notifications for the UI. */
export class TokenStore {
  private token: string | null;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly storage: TokenStorage | null) {
    this.token = readSafely(storage);
  }

  /** The current token, or null when signed out. */
  get(): string | null {
    return this.token;
  }

  /** Stores a token (trimmed; an empty one signs out). */
  set(token: string): void {
    const trimmed = token.trim();
    if (trimmed === '') {
      this.clear();
      return;
    }
    this.token = trimmed;
    try {
      this.storage?.setItem(STORAGE_KEY, trimmed);
    } catch {
      // Storage may be disabled (private mode, quota): the in-memory copy still works.
    }
    this.notify();
  }

  /** Forgets the token (sign out, or the API refused it). */
  clear(): void {
    this.token = null;
    try {
      this.storage?.removeItem(STORAGE_KEY);
    } catch {
      // See set(): nothing else to undo.
    }
    this.notify();
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}

function readSafely(storage: TokenStorage | null): string | null {
  try {
    const stored = storage?.getItem(STORAGE_KEY);
    return stored && stored.trim() !== '' ? stored : null;
  } catch {
    return null;
  }
}
