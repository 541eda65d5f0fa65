/** Addresses and names as the daemon compares them: one rule each, used everywhere. */

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Whether text is a dotted IPv4 address (no leading zeros: `01.2.3.4` is not one). */
export function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

/** Whether text is an IPv4 or IPv6 address. */
export function isIp(text: string): boolean {
  if (isIPv4(text)) return true;
  if (!text.includes(":") || !/^[0-9a-fA-F:.]+$/.test(text)) return false;
  try {
    return new URL(`http://[${text}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/** A node name as per-node object names and node comparisons use it: in lower case. */
export function nodeKey(name: string): string {
  return name.toLowerCase();
}
