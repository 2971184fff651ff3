// Splits a free-text list of addresses (a peer's VIPs) as the operator types it, and tells
// text that is no address of either family (IPv4 or IPv6) from text that is, so that a form
// can point at a typo before sending. Whether an address is acceptable (unicast, the right
// family for the gateway's addresses, served once) stays tungate's to judge.

/** Splits on commas, spaces and new lines, dropping empty entries. */
export function splitList(text: string): string[] {
  return text.split(/[\s,]+/).filter((part) => part !== '');
}

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const IPV4 = new RegExp(`^(${OCTET}\\.){3}${OCTET}$`);
const H = '[0-9a-fA-F]{1,4}';
// Hex-and-colons IPv6, compressed or not (no zone, no embedded dotted quad), as tungate
// writes addresses back.
const IPV6 = new RegExp(
  `^((${H}:){7}${H}|(${H}:){1,7}:|(${H}:){1,6}:${H}|(${H}:){1,5}(:${H}){1,2}|(${H}:){1,4}(:${H}){1,3}|` +
    `(${H}:){1,3}(:${H}){1,4}|(${H}:){1,2}(:${H}){1,5}|${H}:(:${H}){1,6}|:((:${H}){1,7}|:))$`,
);

/** The family of an address written as text: 4, 6, or null when it is neither. */
export function addressFamily(text: string): 4 | 6 | null {
  if (IPV4.test(text)) return 4;
  if (IPV6.test(text)) return 6;
  return null;
}

/** Why `text` is not an address of either family, or null when it is one. */
export function addressProblem(text: string): string | null {
  if (text === '') return 'Give an address: IPv4 (e.g. 192.0.2.10) or IPv6 (e.g. 2001:db8::10).';
  if (addressFamily(text) !== null) return null;
  return `"${text}" is not an IPv4 address (like 192.0.2.10) or an IPv6 address (like 2001:db8::10).`;
}
