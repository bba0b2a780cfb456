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
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo (embeds an obfuscated IPv4 address)
  ['2001:db8::', 32], // documentation
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10], // deprecated site-local
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, prefix, 'ipv6');

/** The eight 16-bit groups of an IPv6 address (URL-normalized first), or null. */
function groupsOf(ipv6: string): number[] | null {
  let normalized: string;
  try {
    normalized = new URL(`http://[${ipv6}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const [head = '', tail] = normalized.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

const v4Of = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/**
 * The IPv4 address an IPv6 address carries and that a packet to it would reach: IPv4-mapped
 * (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated), NAT64 (64:ff9b::a.b.c.d) and 6to4
 * (2002:aabb:ccdd::/48).
 */
function embeddedIpv4(ipv6: string): string | null {
  const g = groupsOf(ipv6);
  if (g === null) return null;
  const zeros = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && (g[5] === 0xffff || g[5] === 0)) return v4Of(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4Of(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4Of(g[1]!, g[2]!);
  return null;
}

/** Whether `ip` (v4 or v6) is loopback, private, link-local or otherwise not a public address. */
export function isPrivateAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return blocked.check(ip, 'ipv4');
  if (family === 6) {
    if (blocked.check(ip, 'ipv6')) return true;
    const v4 = embeddedIpv4(ip);
    return v4 !== null && blocked.check(v4, 'ipv4');
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
