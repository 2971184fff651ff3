// Splits a free-text list of addresses (a peer's VIPs) as the operator types it. Only
// splitting: whether each entry is an address is tungate's to judge.

/** Splits on commas, spaces and new lines, dropping empty entries. */
export function splitList(text: string): string[] {
  return text.split(/[\s,]+/).filter((part) => part !== '');
}
