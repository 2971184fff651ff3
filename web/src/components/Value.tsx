// A number on screen that tests can read exactly: the formatted text for people, the raw
// value in `data-value` (empty when unknown) and in the tooltip in full. Display only.

import { formatInteger } from '../lib/format';

/** A formatted number carrying its raw value for tests and tooltips. */
export function Value(props: {
  value: number | null | undefined;
  format: (value: number | null | undefined) => string;
  testId?: string;
  class?: string;
  /** Tooltip text; defaults to the exact integer for counters. */
  title?: string;
}) {
  const known = props.value !== null && props.value !== undefined && Number.isFinite(props.value);
  return (
    <span
      class={props.class ? `num ${props.class}` : 'num'}
      data-testid={props.testId}
      data-value={known ? String(props.value) : ''}
      title={props.title ?? (known ? formatInteger(props.value) : 'not known yet')}
    >
      {props.format(props.value)}
    </span>
  );
}
