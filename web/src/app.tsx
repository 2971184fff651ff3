// The application shell: builds the services (token store, API client, connection state,
// toasts, sign-in dialog), draws the header and navigation, and shows the page the URL
// fragment names. Owns the sign-in flow's orchestration (one dialog at a time; a declined
// read prompt is not repeated every second); the pages own everything else.

import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiClient, type SignInRequest } from './api/client';
import { TokenStore, type TokenStorage } from './api/token';
import { Dialog } from './components/Dialog';
import { LoginForm } from './components/LoginForm';
import { ServicesContext, type AppServices, type Connection } from './context';
import { DashboardPage } from './pages/Dashboard';
import { ConfigPage } from './pages/Config';
import { LoginPage } from './pages/Login';
import { PluginsPage } from './pages/Plugins';
import { FleetPage } from './pages/Fleet';
import { ROUTE_HASH, navigate, useRoute, type Route } from './router';

interface Toast {
  id: number;
  text: string;
}

interface PendingSignIn {
  request: SignInRequest | null;
  promise: Promise<boolean>;
  resolve: (signedIn: boolean) => void;
}

const SIGN_IN_REASONS: Record<string, string> = {
  'needs-token:write': 'Changes need the admin token. Sign in, and the change goes through.',
  'needs-token:read': 'This tungate listener needs the admin token even to show its state.',
  'token-refused:write':
    'tungate refused the stored token (it may have been rotated). Sign in again to finish the change.',
  'token-refused:read': 'tungate refused the stored token (it may have been rotated). Sign in again.',
};

function sessionStorageOrNull(): TokenStorage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** The whole admin UI. */
export function App() {
  const route = useRoute();
  const tokens = useMemo(() => new TokenStore(sessionStorageOrNull()), []);
  const [signedIn, setSignedIn] = useState(() => tokens.get() !== null);
  const [connection, setConnection] = useState<Connection>({ state: 'unknown', message: null });
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [prompt, setPrompt] = useState<PendingSignIn | null>(null);
  const pending = useRef<PendingSignIn | null>(null);
  const readPromptDeclined = useRef(false);
  const toastId = useRef(0);

  useEffect(
    () =>
      tokens.subscribe(() => {
        const hasToken = tokens.get() !== null;
        setSignedIn(hasToken);
        // A fresh sign-in (dialog or login page) re-allows the prompt on a later 401.
        if (hasToken) readPromptDeclined.current = false;
      }),
    [tokens],
  );

  const openSignIn = useCallback((request: SignInRequest | null): Promise<boolean> => {
    if (request && !request.forWrite && readPromptDeclined.current) return Promise.resolve(false);
    if (pending.current) return pending.current.promise;
    let resolve: (signedIn: boolean) => void = () => undefined;
    const promise = new Promise<boolean>((r) => {
      resolve = r;
    });
    const entry: PendingSignIn = { request, promise, resolve };
    pending.current = entry;
    setPrompt(entry);
    return promise;
  }, []);

  const finishSignIn = useCallback((signedInNow: boolean) => {
    const entry = pending.current;
    if (!entry) return;
    if (signedInNow) readPromptDeclined.current = false;
    else if (entry.request && !entry.request.forWrite) readPromptDeclined.current = true;
    pending.current = null;
    setPrompt(null);
    entry.resolve(signedInNow);
  }, []);

  const api = useMemo(
    () =>
      new ApiClient({
        tokens,
        signIn: openSignIn,
        onOutcome: ({ reachable, message }) =>
          setConnection((old) => {
            const state = reachable ? 'ok' : 'unreachable';
            return old.state === state && old.message === message ? old : { state, message };
          }),
      }),
    [tokens, openSignIn],
  );

  const notify = useCallback((text: string) => {
    const id = ++toastId.current;
    setToasts((list) => [...list, { id, text }]);
    setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), 4000);
  }, []);

  const services: AppServices = useMemo(
    () => ({ api, tokens, connection, notify, signIn: () => openSignIn(null) }),
    [api, tokens, connection, notify, openSignIn],
  );

  const signOut = () => {
    tokens.clear();
    notify('Signed out. The token was removed from this tab.');
  };

  return (
    <ServicesContext.Provider value={services}>
      <a
        class="skip-link"
        href="#main"
        onClick={(event) => {
          // The URL fragment is the router's: move focus without touching it.
          event.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="topbar">
        <div class="brand">
          <span class="brand-name">tungate</span>
          <span class="brand-sub">reply gateway</span>
        </div>
        <nav aria-label="Pages">
          <NavLink route="dashboard" current={route} label="Dashboard" />
          <NavLink route="config" current={route} label="Peers & VIPs" />
          <NavLink route="plugins" current={route} label="Plugins" />
          <NavLink route="fleet" current={route} label="Fleet" />
        </nav>
        <div class="topbar-right">
          <ConnectionBadge connection={connection} />
          {signedIn ? (
            <button type="button" class="btn btn-ghost" onClick={signOut} data-testid="sign-out">
              Sign out
            </button>
          ) : (
            <a class="btn btn-ghost" href={ROUTE_HASH.login} data-testid="sign-in-link">
              Sign in
            </a>
          )}
        </div>
      </header>
      {connection.state === 'unreachable' ? (
        <div class="banner banner-error" role="alert" data-testid="api-unreachable">
          <strong>The tungate API is not answering.</strong> {connection.message} The page keeps trying; what
          it shows may be out of date.
        </div>
      ) : null}
      <main id="main" tabIndex={-1} data-route={route}>
        <Page route={route} />
      </main>
      <div class="toasts" aria-live="polite" data-testid="toasts">
        {toasts.map((t) => (
          <div class="toast" key={t.id} role="status">
            {t.text}
          </div>
        ))}
      </div>
      {prompt ? (
        <Dialog title="Sign in to tungate" onClose={() => finishSignIn(false)} testId="sign-in-dialog">
          {prompt.request ? (
            <p class="dialog-lead">
              {SIGN_IN_REASONS[`${prompt.request.reason}:${prompt.request.forWrite ? 'write' : 'read'}`]}
            </p>
          ) : null}
          <LoginForm autoFocus onSignedIn={() => finishSignIn(true)} onCancel={() => finishSignIn(false)} />
        </Dialog>
      ) : null}
    </ServicesContext.Provider>
  );
}

function Page(props: { route: Route }) {
  switch (props.route) {
    case 'dashboard':
      return <DashboardPage />;
    case 'config':
      return <ConfigPage />;
    case 'plugins':
      return <PluginsPage />;
    case 'fleet':
      return <FleetPage />;
    case 'login':
      return <LoginPage onSignedIn={() => navigate('dashboard')} />;
    case 'not-found':
      return (
        <section class="page">
          <h1>Page not found</h1>
          <p>
            There is no page at this address. Go to the <a href={ROUTE_HASH.dashboard}>dashboard</a>.
          </p>
        </section>
      );
  }
}

function NavLink(props: { route: Exclude<Route, 'not-found'>; current: Route; label: string }) {
  const active = props.route === props.current;
  return (
    <a
      href={ROUTE_HASH[props.route]}
      class={active ? 'nav-link active' : 'nav-link'}
      aria-current={active ? 'page' : undefined}
      data-testid={`nav-${props.route}`}
    >
      {props.label}
    </a>
  );
}

function ConnectionBadge(props: { connection: Connection }) {
  const { state, message } = props.connection;
  const label = state === 'ok' ? 'Connected' : state === 'unreachable' ? 'API unreachable' : 'Connecting…';
  return (
    <span
      class={`conn conn-${state}`}
      data-testid="connection-state"
      data-state={state}
      title={message ?? label}
    >
      <span class="conn-dot" aria-hidden="true" />
      {label}
    </span>
  );
}
