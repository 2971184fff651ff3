// The token form used by the login page and the sign-in dialog: checks a token with
// `GET /api/v1/auth` and stores it only when tungate accepts it. It keeps the token in the
// token store (memory + sessionStorage) and never anywhere else — in particular not in a URL.

import { useState } from 'preact/hooks';
import { ApiError } from '../api/client';
import { useServices } from '../context';
import { FormActions } from './Field';

/** Where the operator finds the token; shown under the field. */
export const TOKEN_HINT =
  'tungate writes it on first start to admin-token in its state directory ' +
  '(e.g. /var/lib/tungate/admin-token), unless it was started with --token-file.';

/** Token field and sign-in button; `onSignedIn` runs once the API accepted the token. */
export function LoginForm(props: { onSignedIn: () => void; onCancel?: () => void; autoFocus?: boolean }) {
  const { api, tokens } = useServices();
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ kind: string; text: string } | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (token.trim() === '') {
      setError({ kind: 'empty', text: 'Enter the admin token.' });
      return;
    }
    setBusy(true);
    setError(null);
    try {
      if (await api.checkToken(token)) {
        tokens.set(token);
        setToken('');
        props.onSignedIn();
      } else {
        setError({
          kind: 'refused',
          text: 'tungate refused this token (HTTP 401). Check that you copied the whole admin-token file.',
        });
      }
    } catch (failure) {
      const unreachable = failure instanceof ApiError && failure.kind === 'unreachable';
      setError({
        kind: unreachable ? 'unreachable' : 'other',
        text: unreachable
          ? `The token could not be checked. ${failure.message}`
          : failure instanceof Error
            ? failure.message
            : String(failure),
      });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="login-form" onSubmit={(e) => void submit(e)} data-testid="login-form">
      <div class={error ? 'field field-invalid' : 'field'}>
        <label for="login-token">Admin token</label>
        <input
          id="login-token"
          name="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          autoFocus={props.autoFocus}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          aria-invalid={error !== null}
          aria-describedby={error ? 'login-token-hint login-error' : 'login-token-hint'}
          data-testid="login-token"
        />
        <p class="field-hint" id="login-token-hint">
          {TOKEN_HINT}
        </p>
      </div>
      {error ? (
        <p
          class="alert alert-error"
          role="alert"
          id="login-error"
          data-testid="login-error"
          data-kind={error.kind}
        >
          {error.text}
        </p>
      ) : null}
      <FormActions
        submitLabel="Sign in"
        busyLabel="Checking…"
        busy={busy}
        onCancel={props.onCancel}
        testId="login-submit"
      />
    </form>
  );
}
