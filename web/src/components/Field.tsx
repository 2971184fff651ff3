// A labelled form field with its API errors shown right under it (aria-invalid and
// aria-describedby wired), so a 422 lands next to what it is about. Owns layout only.

import type { ComponentChildren } from 'preact';
import { ApiError } from '../api/client';
import {
  formatFieldPath,
  mapFieldErrors,
  type FieldMessage,
  type FormScope,
  type MappedErrors,
} from '../lib/fieldErrors';
import { describeError } from './States';

/** Props every field control receives to link itself to label and errors. */
export interface FieldControlProps {
  id: string;
  'aria-invalid': boolean;
  'aria-describedby': string | undefined;
}

/** Label, control, hint and error messages of one field. */
export function Field(props: {
  id: string;
  label: string;
  hint?: ComponentChildren;
  errors?: readonly FieldMessage[] | undefined;
  /** Turns a message's sub-path (e.g. `[2]` under `vips`) into words. */
  describeRest?: (rest: FieldMessage['rest']) => string;
  children: (control: FieldControlProps) => ComponentChildren;
  testId?: string;
}) {
  const errors = props.errors ?? [];
  const hintId = props.hint ? `${props.id}-hint` : undefined;
  const errorId = errors.length ? `${props.id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  return (
    <div class={errors.length ? 'field field-invalid' : 'field'} data-testid={props.testId}>
      <label for={props.id}>{props.label}</label>
      {props.children({
        id: props.id,
        'aria-invalid': errors.length > 0,
        'aria-describedby': describedBy,
      })}
      {props.hint ? (
        <p class="field-hint" id={hintId}>
          {props.hint}
        </p>
      ) : null}
      {errors.length ? (
        <ul class="field-errors" id={errorId} data-testid={`${props.id}-errors`}>
          {errors.map((e, i) => (
            <li key={i}>
              {e.rest.length
                ? `${props.describeRest ? props.describeRest(e.rest) : formatFieldPath(e.rest)}: `
                : ''}
              {e.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** The messages no field claimed, above the form's buttons. */
export function GeneralErrors(props: { messages: readonly string[]; testId?: string }) {
  if (props.messages.length === 0) return null;
  return (
    <div class="alert alert-error" role="alert" data-testid={props.testId ?? 'form-errors'}>
      {props.messages.length === 1 ? (
        <p>{props.messages[0]}</p>
      ) : (
        <ul>
          {props.messages.map((m, i) => (
            <li key={i}>{m}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A form's Cancel and submit buttons (the submit one says what it is doing while busy). */
export function FormActions(props: {
  submitLabel: string;
  busyLabel: string;
  busy: boolean;
  disabled?: boolean;
  onCancel?: (() => void) | undefined;
  danger?: boolean;
  /** A plain button calling this instead of a form submit button. */
  onSubmit?: () => void;
  testId?: string;
}) {
  return (
    <div class="form-actions">
      {props.onCancel ? (
        <button type="button" class="btn" onClick={props.onCancel}>
          Cancel
        </button>
      ) : null}
      <button
        type={props.onSubmit ? 'button' : 'submit'}
        class={props.danger ? 'btn btn-danger' : 'btn btn-primary'}
        disabled={props.busy || props.disabled === true}
        onClick={props.onSubmit}
        data-testid={props.testId}
      >
        {props.busy ? props.busyLabel : props.submitLabel}
      </button>
    </div>
  );
}

/** A failed save, sorted onto a form: API errors by field path, anything else as general. */
export function toFormErrors(failure: unknown, scope: FormScope): MappedErrors {
  if (failure instanceof ApiError && failure.kind === 'api') return mapFieldErrors(failure, scope);
  return { fields: {}, general: [describeError(failure)] };
}
