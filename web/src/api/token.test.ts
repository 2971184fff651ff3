import { describe, expect, it } from 'vitest';
import { TokenStore, type TokenStorage } from './token';

class MemoryStorage implements TokenStorage {
  readonly items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
}

describe('TokenStore', () => {
  it('keeps the token in memory and session storage, trimmed', () => {
    const storage = new MemoryStorage();
    const store = new TokenStore(storage);
    expect(store.get()).toBeNull();
    store.set('  abc123\n');
    expect(store.get()).toBe('abc123');
    expect([...storage.items.values()]).toEqual(['abc123']);
    expect(new TokenStore(storage).get()).toBe('abc123');
  });

  it('forgets the token everywhere on clear, and on an empty set', () => {
    const storage = new MemoryStorage();
    const store = new TokenStore(storage);
    store.set('abc');
    store.clear();
    expect(store.get()).toBeNull();
    expect(storage.items.size).toBe(0);
    store.set('abc');
    store.set('   ');
    expect(store.get()).toBeNull();
  });

  it('notifies subscribers until they unsubscribe', () => {
    const store = new TokenStore(null);
    let calls = 0;
    const stop = store.subscribe(() => calls++);
    store.set('a');
    store.clear();
    stop();
    store.set('b');
    expect(calls).toBe(2);
  });

  it('works in memory when storage throws (disabled storage)', () => {
    const broken: TokenStorage = {
      getItem() {
        throw new Error('denied');
      },
      setItem() {
        throw new Error('denied');
      },
      removeItem() {
        throw new Error('denied');
      },
    };
    const store = new TokenStore(broken);
    expect(store.get()).toBeNull();
    store.set('abc');
    expect(store.get()).toBe('abc');
    store.clear();
    expect(store.get()).toBeNull();
  });
});
