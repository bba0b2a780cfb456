/**
 * Where a CRM webhook may POST. Unless ONECLOUD_WEBHOOK_ALLOW_PRIVATE is set, a webhook must not
 * reach the server's own network: loopback, private (RFC 1918, unique-local), carrier-grade NAT,
 * link-local (cloud metadata at 169.254.169.254), unspecified, multicast and reserved addresses
 * are refused, at configuration (IP literals and `localhost` names) and at every delivery (each
 * address the host name resolves to, checked on the connection's own lookup, so a name that
 * re-resolves to an internal address between check and connect is refused too).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  blocked.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, prefix, 'ipv6');

/** The IPv4 address embedded in an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::) address. */
function embeddedIpv4(ipv6: string): string | null {
  let normalized: string;
  try {
    normalized = new URL(`http://[${ipv6}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const m = /^(?:::ffff|64:ff9b:):([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(normalized);
  if (!m) return null;
  const hi = parseInt(m[1]!, 16);
  const lo = parseInt(m[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Whether `ip` (v4 or v6) is loopback, private, link-local or otherwise not a public address. */
export function isPrivateAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return blocked.check(ip, 'ipv4');
  if (family === 6) {
    const v4 = embeddedIpv4(ip);
    if (v4 !== null) return blocked.check(v4, 'ipv4');
    return blocked.check(ip, 'ipv6');
  }
  return false;
}

/** The host of a URL without IPv6 brackets. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/**
 * Configuration-time check of a webhook URL (no DNS: a name is checked at each delivery):
 * a problem message, or null when the URL may be used.
 */
export function privateTargetProblem(url: URL): string | null {
  const host = hostOf(url).toLowerCase().replace(/\.$/, '');
  const local = host === 'localhost' || host.endsWith('.localhost');
  if (!local && !isPrivateAddress(host)) return null;
  return (
    `must not point at a loopback, private or link-local address (${host}); ` +
    'a server that must reach one sets ONECLOUD_WEBHOOK_ALLOW_PRIVATE=true'
  );
}

export class PrivateTargetError extends Error {
  readonly code = 'EPRIVATETARGET';
  constructor(host: string, address: string) {
    super(`${host} resolves to ${address}, a private address (ONECLOUD_WEBHOOK_ALLOW_PRIVATE is off)`);
    this.name = 'PrivateTargetError';
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http.request/net.connect that refuses private addresses: the connection uses
 * exactly the addresses checked here.
 */
export function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    if (bad) return callback(new PrivateTargetError(hostname, bad.address), []);
    if (addresses.length === 0)
      return callback(Object.assign(new Error(`${hostname}: no address`), { code: 'ENOTFOUND' }), []);
    if (options.all) return callback(null, addresses);
    const first = addresses[0]!;
    return callback(null, first.address, first.family);
  });
}
