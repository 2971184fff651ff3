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
        {copied === 'yes' ? (
          '✓'
        ) : (
          <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
            <rect
              x="5"
              y="5"
              width="9"
              height="9"
              rx="1.5"
              fill="none"
              stroke="currentColor"
              stroke-width="1.5"
            />
            <path
              d="M11 3.5V3a1 1 0 0 0-1-1H3a1 1 0 0 0-1 1v7a1 1 0 0 0 1 1h.5"
              fill="none"
              stroke="currentColor"
              stroke-width="1.5"
            />
          </svg>
        )}
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
