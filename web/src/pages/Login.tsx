// The login page: explains where the token comes from and checks it with the API. Reads
// work without a token on a loopback listener, so this page is optional until a write or a
// 401 needs it.

import { LoginForm } from '../components/LoginForm';
import { useServices } from '../context';
import { ROUTE_HASH } from '../router';

/** `#/login`. */
export function LoginPage(props: { onSignedIn: () => void }) {
  const { tokens, notify } = useServices();
  const signedIn = tokens.get() !== null;
  return (
    <section class="page page-narrow" aria-labelledby="login-title">
      <div class="card login-card">
        <h1 id="login-title">Sign in</h1>
        <p class="lead">
          The admin token lets you change peers, VIPs and plugins. On a loopback listener you can look around
          without it; tungate asks for it before the first change.
        </p>
        {signedIn ? (
          <p class="alert alert-ok" data-testid="login-state">
            This tab is signed in. Paste another token below to switch, or{' '}
            <a href={ROUTE_HASH.dashboard}>go to the dashboard</a>.
          </p>
        ) : null}
        <LoginForm
          autoFocus
          onSignedIn={() => {
            notify('Signed in.');
            props.onSignedIn();
          }}
        />
        <p class="fine-print">
          The token stays in this browser tab only (memory and session storage) and is sent as an{' '}
          <code>Authorization: Bearer</code> header; it is never put in a URL.
        </p>
      </div>
    </section>
  );
}
