// The per-binding inputs shared by the VIP chain editor and the plugin "bind" dialog: the
// `on_error` choice and the JSON config editor, checked as JSON while typing. Owns those
// inputs' look and local check; the caller owns the binding and sends it.

import type { OnError } from '../api/types';
import type { FieldMessage } from '../lib/fieldErrors';
import { parseConfigText } from '../lib/jsonConfig';
import { Field } from './Field';

/** The editable part of a binding, as the form holds it. */
export interface BindingDraft {
  onError: OnError;
  configText: string;
}

/** `on_error` radios and the config editor with its JSON check and API errors. */
export function BindingFields(props: {
  idPrefix: string;
  draft: BindingDraft;
  onChange: (draft: BindingDraft) => void;
  errors?: { config?: FieldMessage[] | undefined; on_error?: FieldMessage[] | undefined };
}) {
  const { draft, idPrefix } = props;
  const parsed = parseConfigText(draft.configText);
  const configErrors: FieldMessage[] = [
    ...(parsed.ok ? [] : [{ message: parsed.message, rest: [] }]),
    ...(props.errors?.config ?? []),
  ];
  return (
    <>
      <fieldset class="field" aria-describedby={`${idPrefix}-on-error-hint`}>
        <legend>If the plugin fails (trap, time-out)</legend>
        <div class="radio-row">
          {(['pass', 'drop'] as const).map((choice) => (
            <label key={choice} class="radio">
              <input
                type="radio"
                name={`${idPrefix}-on-error`}
                value={choice}
                checked={draft.onError === choice}
                onChange={() => props.onChange({ ...draft, onError: choice })}
                data-testid={`${idPrefix}-on-error-${choice}`}
              />
              {choice === 'pass' ? 'Pass the packet (fail open)' : 'Drop the packet (fail closed)'}
            </label>
          ))}
        </div>
        <p class="field-hint" id={`${idPrefix}-on-error-hint`}>
          Sent as <code>on_error</code>. Either way the failure is counted on the dashboard.
        </p>
        {props.errors?.on_error?.length ? (
          <ul class="field-errors">
            {props.errors.on_error.map((e, i) => (
              <li key={i}>{e.message}</li>
            ))}
          </ul>
        ) : null}
      </fieldset>
      <Field
        id={`${idPrefix}-config`}
        label="Plugin configuration (JSON, optional)"
        hint="Handed to the plugin when it is bound. Leave empty for none."
        errors={configErrors}
      >
        {(control) => (
          <textarea
            {...control}
            class="code-input"
            rows={6}
            spellcheck={false}
            value={draft.configText}
            placeholder={'{\n  "deny": ["198.51.100.0/24"]\n}'}
            onInput={(e) => props.onChange({ ...draft, configText: e.currentTarget.value })}
            data-testid={`${idPrefix}-config`}
          />
        )}
      </Field>
    </>
  );
}

/** True when the draft's config text can be sent. */
export function draftIsValid(draft: BindingDraft): boolean {
  return parseConfigText(draft.configText).ok;
}
