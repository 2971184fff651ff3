// A sha256 shown short, in full on hover, with a copy button that falls back to selecting
// the text where the clipboard API is unavailable. Display only.

import { useState } from 'preact/hooks';
import { shortHash } from '../lib/format';

/** A module hash: 12 hex digits visible, the whole hash on hover and on copy. */
export function Hash(props: { sha256: string; testId?: string }) {
  const [copied, setCopied] = useState<'no' | 'yes' | 'failed'>('no');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.sha256);
      setCopied('yes');
      setTimeout(() => setCopied('no'), 2000);
    } catch {
      // No clipboard (e.g. not a secure context): show the hash selected for Ctrl+C.
      setCopied('failed');
    }
  };
  return (
    <span class="hash" data-testid={props.testId} data-value={props.sha256}>
      <code title={props.sha256}>{shortHash(props.sha256)}</code>
      <button
        type="button"
        class="btn-icon btn-copy"
        onClick={() => void copy()}
        aria-label={`Copy the full sha256 ${props.sha256}`}
        title="Copy the full sha256"
      >
        {copied === 'yes' ? '✓' : '⧉'}
      </button>
      {copied === 'failed' ? (
        <input
          class="hash-full"
          readOnly
          value={props.sha256}
          aria-label="Full sha256 (select and copy)"
          ref={(el) => el?.select()}
        />
      ) : null}
    </span>
  );
}
