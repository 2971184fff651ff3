// The app-wide services a page needs (API client, token store, connection state, toasts),
// handed down through one Preact context. Owns no behaviour: app.tsx builds the values.

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { ApiClient } from './api/client';
import type { TokenStore } from './api/token';

/** Whether the last request reached the tungate API. */
export interface Connection {
  state: 'unknown' | 'ok' | 'unreachable';
  message: string | null;
}

/** What every page can use. */
export interface AppServices {
  api: ApiClient;
  tokens: TokenStore;
  connection: Connection;
  /** Shows a short confirmation ("Peer rs1 saved") in the toast area. */
  notify: (message: string) => void;
  /** Opens the sign-in dialog; resolves true once a valid token is stored. */
  signIn: () => Promise<boolean>;
}

/** The context carrying the services; app.tsx provides it. */
export const ServicesContext = createContext<AppServices | null>(null);

/** The app services; throws when used outside the app (a programming error). */
export function useServices(): AppServices {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices() used outside <ServicesContext.Provider>');
  return services;
}
