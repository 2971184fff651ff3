// Hash routing: which page the URL fragment names. Only page names live in the URL — never
// the token or any other secret.

import { useEffect, useState } from 'preact/hooks';

/** The pages of the UI. */
export type Route = 'dashboard' | 'config' | 'plugins' | 'fleet' | 'login' | 'not-found';

/** The fragment of each page, for links. */
export const ROUTE_HASH: Record<Exclude<Route, 'not-found'>, string> = {
  dashboard: '#/',
  config: '#/peers-vips',
  plugins: '#/plugins',
  fleet: '#/fleet',
  login: '#/login',
};

/** Reads a URL fragment (`#/plugins`) as a route. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/\/+$/, '').split('?')[0] ?? '';
  switch (path) {
    case '':
    case '/dashboard':
      return 'dashboard';
    case '/peers-vips':
      return 'config';
    case '/plugins':
      return 'plugins';
    case '/fleet':
      return 'fleet';
    case '/login':
      return 'login';
    default:
      return 'not-found';
  }
}

/** The current route, following `hashchange`. */
export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

/** Goes to a page. */
export function navigate(route: Exclude<Route, 'not-found'>): void {
  window.location.hash = ROUTE_HASH[route];
}
