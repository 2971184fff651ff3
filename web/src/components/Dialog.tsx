// A modal dialog on the native <dialog> element: focus moves in and is trapped by the
// browser, Escape closes it, focus returns to the opener. Owns only the frame; the content
// (forms, confirmations) belongs to the caller.

import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { FormActions } from './Field';
import { describeError } from './States';

/** An open modal; render it only while it should be open. */
export function Dialog(props: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  wide?: boolean;
  testId?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const onCloseRef = useRef(props.onClose);
  onCloseRef.current = props.onClose;

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (!dialog.open) dialog.showModal();
    const onCancel = (event: Event) => {
      event.preventDefault();
      onCloseRef.current();
    };
    dialog.addEventListener('cancel', onCancel);
    return () => {
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      opener?.focus();
    };
  }, []);

  return (
    <dialog
      ref={ref}
      class={props.wide ? 'dialog dialog-wide' : 'dialog'}
      aria-labelledby={titleId}
      data-testid={props.testId}
    >
      <div class="dialog-head">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" class="btn-icon" aria-label="Close" onClick={() => props.onClose()}>
          ×
        </button>
      </div>
      <div class="dialog-body">{props.children}</div>
    </dialog>
  );
}

/** A yes/no question with the action's own error shown in place. */
export function ConfirmDialog(props: {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  /** When set, the action cannot be confirmed (the text says why). */
  blocked?: boolean;
  busy: boolean;
  error: string | null;
  onConfirm: () => void;
  onClose: () => void;
}) {
  return (
    <Dialog title={props.title} onClose={props.onClose} testId="confirm-dialog">
      <div class="confirm-text">{props.children}</div>
      {props.error ? (
        <p class="alert alert-error" role="alert" data-testid="confirm-error">
          {props.error}
        </p>
      ) : null}
      <FormActions
        submitLabel={props.confirmLabel}
        busyLabel="Working…"
        busy={props.busy}
        disabled={props.blocked === true}
        danger={props.danger === true}
        onCancel={props.onClose}
        onSubmit={props.onConfirm}
        testId="confirm-submit"
      />
    </Dialog>
  );
}

/** A confirmation that runs `action` and shows its failure in place; `onDone` after success. */
export function ActionDialog(props: {
  title: string;
  confirmLabel: string;
  danger?: boolean;
  blocked?: boolean;
  action: () => Promise<void>;
  onClose: () => void;
  onDone: () => void;
  children: ComponentChildren;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await props.action();
      props.onDone();
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <ConfirmDialog
      title={props.title}
      confirmLabel={props.confirmLabel}
      danger={props.danger ?? false}
      blocked={props.blocked ?? false}
      busy={busy}
      error={error}
      onConfirm={() => void confirm()}
      onClose={props.onClose}
    >
      {props.children}
    </ConfirmDialog>
  );
}
