/**
 * The registrar (RFC 3261 §10.3): REGISTER with digest authentication against the device
 * credentials (realm = the organization's domain; SIP users register as
 * `sip:{sipUsername}@{domain}`), several contacts per device, expiry bounds (423 + Min-Expires),
 * unregistration (`Expires: 0`, `Contact: *`), bindings in the database (kept in memory for
 * routing, loaded again after a restart), expiry sweeps, brute-force protection, and the
 * `device.registered` / `device.unregistered` events.
 */
import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../db/database.js';
import type { DB } from '../db/schema.js';
import { recordChange } from '../db/changes.js';
import type { Device } from '../areas/devices/repository.js';
import { OrganizationRepository, type Organization } from '../areas/organizations/repository.js';
import {
  RegistrationRepository,
  type DeviceRegistrationState,
  type SipBinding,
} from '../areas/registrations/repository.js';
import type { Clock, Timer } from './clock.js';
import {
  formatChallenge,
  parseAuthorization,
  verifyDigest,
  type DigestAlgorithm,
  type DigestCredentials,
  type NonceManager,
} from './digest.js';
import {
  formatUri,
  getCallId,
  getContacts,
  getCSeq,
  getExpires,
  getHeader,
  getHeaders,
  getTo,
  isSipUri,
  type SipHeader,
  type SipRequest,
} from './message.js';
import type { ServerTransaction } from './transaction.js';
import type { Endpoint, SipLogger } from './transport.js';
import type { UserAgentCore } from './ua.js';
import type { SipDirectory } from './directory.js';

// ---------------------------------------------------------------------------------------------
// Brute-force protection.

export interface GuardOptions {
  /** Failures from one source within `windowMs` that trigger a block (default 10). */
  maxFailures?: number;
  windowMs?: number;
  /** How long a blocked source is answered 403 (default 5 minutes). */
  blockMs?: number;
  /** Sources tracked at most (oldest forgotten first). */
  maxTracked?: number;
}

/** Counts authentication failures per source address; too many in a window block it for a while. */
export class BruteForceGuard {
  private readonly entries = new Map<string, { failures: number; since: number; blockedUntil: number }>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly blockMs: number;
  private readonly maxTracked: number;

  constructor(
    private readonly now: () => number,
    private readonly logger: SipLogger,
    options: GuardOptions = {},
  ) {
    this.maxFailures = options.maxFailures ?? 10;
    this.windowMs = options.windowMs ?? 60_000;
    this.blockMs = options.blockMs ?? 300_000;
    this.maxTracked = options.maxTracked ?? 100_000;
  }

  isBlocked(source: string): boolean {
    const e = this.entries.get(source);
    return e !== undefined && e.blockedUntil > this.now();
  }

  /** Records a failure; true when this failure started a block. */
  fail(source: string): boolean {
    const now = this.now();
    let e = this.entries.get(source);
    if (!e || now - e.since > this.windowMs) {
      this.entries.delete(source);
      e = { failures: 0, since: now, blockedUntil: 0 };
      this.entries.set(source, e);
      if (this.entries.size > this.maxTracked) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
    }
    e.failures += 1;
    if (e.failures >= this.maxFailures && e.blockedUntil <= now) {
      e.blockedUntil = now + this.blockMs;
      this.logger.warn(
        { source, failures: e.failures, blockedForMs: this.blockMs },
        'SIP: too many authentication failures, source blocked',
      );
      return true;
    }
    return false;
  }

  succeed(source: string): void {
    const e = this.entries.get(source);
    if (e && e.blockedUntil <= this.now()) this.entries.delete(source);
  }
}

// ---------------------------------------------------------------------------------------------
// Bindings in memory (routing reads these; the database is the durable copy).

/**
 * A TCP connection over which a device's REGISTER was digest-authenticated: INVITEs from that
 * device on the same connection need no new challenge (UDP sources can be spoofed; a connection
 * cannot be hijacked without its handshake).
 */
export interface TrustedConnection {
  organizationId: number;
  deviceId: number;
  userId: number;
  aor: string;
  /**
   * The device's `updatedAt` when it authenticated: a device changed since (its password rotated)
   * or gone is trusted no more.
   */
  deviceVersion: number;
  /** Until when (the device's latest binding over it). */
  expiresAt: number;
}

export class BindingStore {
  private readonly byDevice = new Map<number, SipBinding[]>();
  private readonly connections = new Map<number, TrustedConnection>();

  constructor(private readonly now: () => number) {}

  set(deviceId: number, bindings: SipBinding[]): void {
    if (bindings.length === 0) this.byDevice.delete(deviceId);
    else this.byDevice.set(deviceId, bindings);
  }

  ofDevice(deviceId: number): SipBinding[] {
    const now = this.now();
    return (this.byDevice.get(deviceId) ?? []).filter((b) => b.expiresAt > now);
  }

  ofUser(organizationId: number, userId: number): SipBinding[] {
    const now = this.now();
    const out: SipBinding[] = [];
    for (const list of this.byDevice.values())
      for (const b of list)
        if (b.userId === userId && b.organizationId === organizationId && b.expiresAt > now) out.push(b);
    return out;
  }

  /**
   * Records that `device` registered with digest over TCP connection `connectionId`, with
   * `bindings` (of this connection) as the result; none left ends the trust.
   */
  trustConnection(
    connectionId: number,
    device: { id: number; userId: number; organizationId: number; updatedAt: number },
    aor: string,
    bindings: SipBinding[],
  ): void {
    const expiresAt = Math.max(0, ...bindings.map((b) => b.expiresAt));
    if (expiresAt <= this.now()) {
      this.connections.delete(connectionId);
      return;
    }
    this.connections.set(connectionId, {
      organizationId: device.organizationId,
      deviceId: device.id,
      userId: device.userId,
      aor,
      deviceVersion: device.updatedAt,
      expiresAt,
    });
    if (this.connections.size > 10_000) this.pruneConnections();
  }

  /** The device trusted on this TCP connection, while its registration lasts. */
  trustedConnection(connectionId: number): TrustedConnection | undefined {
    const t = this.connections.get(connectionId);
    return t && t.expiresAt > this.now() ? t : undefined;
  }

  /** Ends the trust of a connection (its device changed or is gone). */
  distrustConnection(connectionId: number): void {
    this.connections.delete(connectionId);
  }

  /** Forgets trust that expired (connection ids are never reused, so nothing else is stale). */
  pruneConnections(): void {
    const now = this.now();
    for (const [id, t] of this.connections) if (t.expiresAt <= now) this.connections.delete(id);
  }

  get size(): number {
    let n = 0;
    for (const list of this.byDevice.values()) n += list.length;
    return n;
  }

  clear(): void {
    this.byDevice.clear();
    this.connections.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Small caches: organizations by domain.

export class OrganizationCache {
  private readonly entries = new Map<string, { org: Organization | undefined; at: number }>();

  constructor(
    private readonly database: DatabaseHandle,
    private readonly now: () => number,
    private readonly ttlMs = 5_000,
  ) {}

  async byDomain(domain: string): Promise<Organization | undefined> {
    const key = domain.toLowerCase();
    const hit = this.entries.get(key);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.org;
    const org = await new OrganizationRepository(this.database.db).getByDomain(key);
    if (this.entries.size > 10_000) this.entries.clear();
    this.entries.set(key, { org, at: this.now() });
    return org;
  }
}

// ---------------------------------------------------------------------------------------------
// Digest authentication of devices (REGISTER: 401/WWW-Authenticate; INVITE: 407/Proxy-Authenticate).

export type AuthOutcome =
  | { ok: true; device: Device }
  | {
      ok: false;
      status: number;
      reason?: string;
      headers?: SipHeader[];
      /** A 401/407 challenge: answered statelessly (§8.2.7), nothing to remember about it. */
      challenge?: true;
    };

/** Sends a failed {@link AuthOutcome}: a challenge statelessly, anything else in the transaction. */
export function replyAuthFailure(
  ua: UserAgentCore,
  tx: ServerTransaction,
  outcome: Extract<AuthOutcome, { ok: false }>,
): void {
  const options = {
    ...(outcome.reason ? { reason: outcome.reason } : {}),
    ...(outcome.headers ? { headers: outcome.headers } : {}),
  };
  if (outcome.challenge) ua.replyStatelessly(tx, outcome.status, options);
  else ua.reply(tx, outcome.status, options);
}

export interface AuthenticatorOptions {
  /** Devices and their digest credentials (cached; see SipDirectory). */
  directory: SipDirectory;
  nonces: NonceManager;
  guard: BruteForceGuard;
  logger: SipLogger;
  /** Algorithms offered, one challenge each, in this order (default MD5 then SHA-256). */
  algorithms?: readonly DigestAlgorithm[];
}

export class DeviceAuthenticator {
  readonly algorithms: readonly DigestAlgorithm[];

  constructor(private readonly options: AuthenticatorOptions) {
    this.algorithms = options.algorithms ?? ['MD5', 'SHA-256'];
  }

  challenge(org: Organization, proxy: boolean, stale = false): AuthOutcome {
    const name = proxy ? 'Proxy-Authenticate' : 'WWW-Authenticate';
    // One nonce for every algorithm offered: the client answers one challenge.
    const nonce = this.options.nonces.issue();
    const headers = this.algorithms.map((algorithm) => ({
      name,
      value: formatChallenge({
        realm: org.domain,
        nonce,
        algorithm,
        ...(stale ? { stale: true } : {}),
      }),
    }));
    return { ok: false, status: proxy ? 407 : 401, headers, challenge: true };
  }

  /** Checks the request's credentials for `org`'s realm; counts failures against `source`. */
  async authenticate(
    req: SipRequest,
    org: Organization,
    proxy: boolean,
    source: Endpoint,
  ): Promise<AuthOutcome> {
    const { guard, logger, nonces } = this.options;
    if (guard.isBlocked(source.address)) return { ok: false, status: 403, reason: 'Forbidden' };
    let creds: DigestCredentials | undefined;
    for (const value of getHeaders(req, proxy ? 'Proxy-Authorization' : 'Authorization')) {
      try {
        const c = parseAuthorization(value);
        if (c && c.realm === org.domain) {
          creds = c;
          break;
        }
      } catch {
        return { ok: false, status: 400, reason: 'Bad Authorization header' };
      }
    }
    if (!creds) return this.challenge(org, proxy);
    // A nonce that is not ours (another secret, garbage): challenge again, it is no guess.
    if (nonces.check(creds.nonce) === 'invalid') return this.challenge(org, proxy);
    const check = (found: Awaited<ReturnType<SipDirectory['device']>>) =>
      verifyDigest({
        credentials: creds,
        method: req.method,
        realm: org.domain,
        nonces,
        ha1: (algorithm) =>
          found
            ? ((algorithm === 'MD5' ? found.credentials.ha1Md5 : found.credentials.ha1Sha256) ?? undefined)
            : undefined,
      });
    const { directory } = this.options;
    let found = await directory.device(org.id, creds.username);
    let verdict = check(found);
    // (An unknown username was just read from the database: only a known device may be stale.)
    if (verdict === 'invalid' && found) {
      // Cached credentials may predate a password rotation by a few milliseconds: the database
      // has the last word before a failure is counted. (A digest that did not match consumed
      // no nonce count, so checking it again is no replay.)
      const again = await directory.device(org.id, creds.username, true);
      if (
        again?.credentials.ha1Md5 !== found?.credentials.ha1Md5 ||
        again?.credentials.ha1Sha256 !== found?.credentials.ha1Sha256
      ) {
        found = again;
        verdict = check(found);
      }
    }
    if (verdict === 'stale') return this.challenge(org, proxy, true);
    if (verdict === 'invalid' || !found) {
      const blocked = guard.fail(source.address);
      logger.warn(
        {
          source: `${source.address}:${source.port}`,
          username: creds.username.slice(0, 64),
          realm: org.domain,
          blocked,
        },
        'SIP: digest authentication failed',
      );
      return { ok: false, status: 403, reason: 'Forbidden' };
    }
    guard.succeed(source.address);
    return { ok: true, device: found.device };
  }
}

// ---------------------------------------------------------------------------------------------
// The registrar.

export interface RegistrarOptions {
  database: DatabaseHandle;
  ua: UserAgentCore;
  auth: DeviceAuthenticator;
  organizations: OrganizationCache;
  store: BindingStore;
  clock: Clock;
  logger: SipLogger;
  /** Shortest accepted registration, seconds (default 60; shorter → 423). */
  minExpires?: number;
  /** Longest granted registration, seconds (default 3600; longer is shortened). */
  maxExpires?: number;
  /** When neither the Contact nor the request says (default 3600). */
  defaultExpires?: number;
  /** Contacts per device; the oldest go when more register (default 10). */
  maxContactsPerDevice?: number;
  /** How often expired bindings are swept (default 10 s). */
  sweepIntervalMs?: number;
}

export class Registrar {
  readonly minExpires: number;
  readonly maxExpires: number;
  readonly defaultExpires: number;
  readonly maxContacts: number;
  private readonly locks = new Map<number, Promise<unknown>>();
  private sweepTimer: Timer | undefined;
  private closed = false;

  constructor(private readonly options: RegistrarOptions) {
    this.minExpires = options.minExpires ?? 60;
    this.maxExpires = options.maxExpires ?? 3600;
    this.defaultExpires = options.defaultExpires ?? 3600;
    this.maxContacts = options.maxContactsPerDevice ?? 10;
  }

  private get repo(): RegistrationRepository {
    return new RegistrationRepository(this.options.database.db);
  }

  private now(): number {
    return this.options.clock.now();
  }

  /** Loads the unexpired bindings from the database (after a restart) and starts the sweeper. */
  async start(): Promise<number> {
    const active = await this.repo.listActive(this.now());
    const byDevice = new Map<number, SipBinding[]>();
    for (const b of active) byDevice.set(b.deviceId, [...(byDevice.get(b.deviceId) ?? []), b]);
    for (const [deviceId, list] of byDevice) this.options.store.set(deviceId, list);
    this.scheduleSweep();
    return active.length;
  }

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweepTimer = this.options.clock.setTimer(this.options.sweepIntervalMs ?? 10_000, () => {
      this.sweep().then(
        () => this.scheduleSweep(),
        (err: unknown) => {
          this.options.logger.error({ err }, 'SIP: registration sweep failed');
          this.scheduleSweep();
        },
      );
    });
  }

  /**
   * Removes the bindings expired by `now`; devices left with none get `device.unregistered`, written
   * in the same transaction as the removal.
   */
  async sweep(now = this.now()): Promise<number> {
    const expired = await this.options.database.db.transaction().execute(async (trx) => {
      const repo = new RegistrationRepository(trx);
      const removed = await repo.removeExpired(now);
      const devices = new Set(removed.map((b) => b.deviceId));
      for (const deviceId of devices) {
        const first = removed.find((b) => b.deviceId === deviceId);
        if (first && (await repo.listByDevice(deviceId, now)).length === 0)
          await this.writeEvent(trx, first, 'device.unregistered', { reason: 'expired' });
      }
      return removed;
    });
    this.options.store.pruneConnections();
    // The memory copy follows the database (read again: a REGISTER may have come in meanwhile).
    for (const deviceId of new Set(expired.map((b) => b.deviceId)))
      await this.serial(deviceId, async () =>
        this.options.store.set(deviceId, await this.repo.listByDevice(deviceId, this.now())),
      );
    return expired.length;
  }

  private async serial<T>(deviceId: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(deviceId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(deviceId, tail);
    void tail.then(() => {
      if (this.locks.get(deviceId) === tail) this.locks.delete(deviceId);
    });
    return run;
  }

  /** Writes a registration event (and its audit row) with `trx`, the transaction of the change. */
  private async writeEvent(
    trx: Kysely<DB>,
    b: SipBinding,
    type: string,
    extra: Record<string, unknown>,
  ): Promise<void> {
    const kind = await new RegistrationRepository(trx).deviceSummary(b.deviceId);
    const data = { deviceId: kind?.deviceId ?? String(b.deviceId), aor: b.aor, ...extra };
    await recordChange(
      trx,
      {
        organizationId: b.organizationId,
        actor: 'sip',
        action: type,
        entity: 'device',
        entityId: data.deviceId,
        data,
        event: { type, userId: b.userId, data },
      },
      this.now(),
    );
  }

  /** Registration state of a user's devices, for the device API. */
  stateOfUser(organizationId: number, userId: number): Promise<DeviceRegistrationState[]> {
    return this.repo.stateOfUserDevices(organizationId, userId, this.now());
  }

  /** Handles a REGISTER (the caller answers nothing itself). Never throws. */
  async handle(req: SipRequest, tx: ServerTransaction, source: Endpoint): Promise<void> {
    const { ua } = this.options;
    try {
      await this.register(req, tx, source);
    } catch (err) {
      this.options.logger.error({ err }, 'SIP: REGISTER failed');
      ua.reply(tx, 500);
    }
  }

  private async register(req: SipRequest, tx: ServerTransaction, source: Endpoint): Promise<void> {
    const { ua, auth } = this.options;
    const to = getTo(req);
    if (!isSipUri(to.uri) || to.uri.user === undefined) {
      ua.reply(tx, 404, { reason: 'Not Found' });
      return;
    }
    const aorUser = to.uri.user;
    const org = await this.options.organizations.byDomain(to.uri.host);
    if (!org) {
      ua.reply(tx, 404, { reason: 'Domain Not Served' });
      return;
    }
    const outcome = await auth.authenticate(req, org, false, source);
    if (!outcome.ok) {
      replyAuthFailure(ua, tx, outcome);
      return;
    }
    const device = outcome.device;
    if (device.sipUsername !== aorUser) {
      ua.reply(tx, 403, { reason: 'Credentials Do Not Match the AOR' });
      return;
    }
    const contacts = getContacts(req);
    const expiresHeader = getExpires(req);
    const callId = getCallId(req);
    const cseq = getCSeq(req).seq;
    const aor = `sip:${aorUser}@${org.domain}`;

    // Validated before anything is written: 400 / 423 / 500 change nothing.
    const wanted: { contact: string; expires: number }[] = [];
    if (contacts === '*') {
      if (expiresHeader !== 0) {
        ua.reply(tx, 400, { reason: 'Contact * Requires Expires: 0' });
        return;
      }
    } else {
      for (const c of contacts) {
        const param = c.params.get('expires');
        let expires =
          param !== undefined && param !== null && /^[0-9]{1,10}$/.test(param) ? Number(param) : undefined;
        expires ??= expiresHeader ?? this.defaultExpires;
        if (expires !== 0 && expires < this.minExpires) {
          ua.reply(tx, 423, { headers: [{ name: 'Min-Expires', value: String(this.minExpires) }] });
          return;
        }
        wanted.push({ contact: formatUri(c.uri), expires: Math.min(expires, this.maxExpires) });
      }
    }

    await this.serial(device.id, async () => {
      const now = this.now();
      // The bindings and their event are one transaction (the project rule for every change).
      const outcome = await this.options.database.db.transaction().execute(async (trx) => {
        const repo = new RegistrationRepository(trx);
        const before = await repo.listByDevice(device.id, now);
        let removed = 0;
        let added = 0;
        if (contacts === '*') {
          removed = await repo.removeAllOfDevice(device.id);
        } else {
          // §10.3 step 7: an older request of the same registration (same Call-ID) is out of order.
          for (const w of wanted) {
            const existing = before.find((b) => b.contact === w.contact);
            if (existing && existing.callId === callId && cseq <= existing.cseq)
              return { outOfOrder: true as const };
          }
          for (const w of wanted) {
            if (w.expires === 0) {
              if (await repo.remove(device.id, w.contact)) removed += 1;
              continue;
            }
            const isNew = !before.some((b) => b.contact === w.contact);
            await repo.upsert(
              {
                organizationId: org.id,
                deviceId: device.id,
                userId: device.userId,
                aor,
                contact: w.contact,
                callId,
                cseq,
                sourceTransport: source.transport,
                sourceAddress: source.address,
                sourcePort: source.port,
                userAgent: getHeader(req, 'User-Agent')?.slice(0, 200) ?? null,
                expiresAt: now + w.expires * 1000,
              },
              now,
            );
            if (isNew) added += 1;
          }
        }
        let after = await repo.listByDevice(device.id, now);
        if (after.length > this.maxContacts) {
          const excess = [...after]
            .sort((a, b) => a.updatedAt - b.updatedAt || a.id - b.id)
            .slice(0, after.length - this.maxContacts);
          for (const b of excess) await repo.remove(device.id, b.contact);
          after = await repo.listByDevice(device.id, now);
        }
        const sample = after[0] ?? before[0];
        if (before.length === 0 && after.length > 0 && sample) {
          await this.writeEvent(trx, sample, 'device.registered', {
            contacts: after.map((b) => b.contact),
            userAgent: sample.userAgent,
          });
        } else if (before.length > 0 && after.length === 0 && sample) {
          await this.writeEvent(trx, sample, 'device.unregistered', { reason: 'unregister' });
        }
        return { outOfOrder: false as const, after, added, removed };
      });
      if (outcome.outOfOrder) {
        ua.reply(tx, 500, { reason: 'Out of Order Request' });
        return;
      }
      const { after, added, removed } = outcome;
      this.options.store.set(device.id, after);
      if (source.transport === 'tcp' && source.connectionId !== undefined)
        this.options.store.trustConnection(
          source.connectionId,
          device,
          aor,
          after.filter(
            (b) =>
              b.sourceTransport === 'tcp' &&
              b.sourcePort === source.port &&
              b.sourceAddress === source.address,
          ),
        );
      const headers: SipHeader[] = after.map((b) => ({
        name: 'Contact',
        value: `<${b.contact}>;expires=${Math.max(0, Math.round((b.expiresAt - now) / 1000))}`,
      }));
      headers.push({ name: 'Date', value: new Date(now).toUTCString() });
      ua.reply(tx, 200, { headers });
      if (added + removed > 0)
        this.options.logger.debug(
          { aor, added, removed, contacts: after.length },
          'SIP: registration changed',
        );
    });
  }

  close(): void {
    this.closed = true;
    this.sweepTimer?.cancel();
  }
}
