import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { DEFAULT_OVERLOAD_TARGET_MS } from './sip/overload.js';

/** Everything the server reads from its environment, validated once at start. */
export interface Config {
  httpHost: string;
  httpPort: number;
  databaseUrl: string;
  dataDir: string;
  /** Server key for HMAC of ticket secrets; 32+ bytes. */
  secretKey: Buffer;
  logLevel: LogLevel;
  /** Set on first start to create the `admin` system administrator with this password. */
  adminPassword: string | undefined;
  /** Body limits in bytes. */
  bodyLimit: number;
  xmlBodyLimit: number;
  /** Whether the deprecated legacy password token (`t=D...`) is accepted on the ticket API. */
  legacyPasswordTokens: boolean;
  /** Longest lifetime a ticket may be given, in days. */
  ticketMaxDays: number;
  /** Failed authentications per minute from one address before it is refused (429) for a minute. */
  authFailureLimit: number;
  /** Password checks (HTTP Basic, legacy token, logins) per minute per user; per address 6×. */
  passwordTryLimit: number;
  /** Tickets a user may create per hour, ticket API and portal together (not from the environment). */
  ticketCreateLimit: number;
  /** How often used SNT-HMACv1 nonces past their expiry are deleted (not from the environment). */
  noncePruneIntervalMs: number;
  /** The event log keeps events this many days, and at most this many. */
  eventRetentionDays: number;
  eventRetentionCount: number;
  /** Concurrent event streams and long-polls per ticket and per organization (429 beyond). */
  eventStreamsPerTicket: number;
  eventStreamsPerOrganization: number;
  /** Interval of the SSE heartbeat comment, in milliseconds. */
  eventHeartbeatMs: number;
  /** Events queued for one slow SSE reader beyond which its stream is closed (it resumes losslessly). */
  eventStreamMaxQueue: number;
  /** Whether CRM webhooks may target loopback, private and link-local addresses (tests, labs). */
  webhookAllowPrivate: boolean;
  /** The SIP core (registrar + B2BUA), started with the HTTP server unless disabled. */
  sip: SipConfig;
}

export interface SipConfig {
  enabled: boolean;
  /** Address SIP binds to (UDP and TCP). */
  host: string;
  /** Host our SIP messages carry in Via and Contact: where phones reach us (never 0.0.0.0). */
  advertisedHost: string;
  /** UDP and TCP port (0 = any free port). */
  port: number;
  /** RFC 3261 timers T1, T2, T4 in milliseconds. */
  t1Ms: number;
  t2Ms: number;
  t4Ms: number;
  /** Ringing time before an unanswered call is ended with 480. */
  noAnswerTimeoutMs: number;
  /**
   * Overload control: the UDP receive-queue delay (ms) above which new calls and registrations
   * get 503 with Retry-After; 0 turns it off.
   */
  overloadDelayMs: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/**
 * Reads and validates the configuration. Every problem is reported at once, each naming the
 * variable, the bad value and what is expected. `loadSecretKey` is separate because it may write
 * a file; this function has no side effects.
 */
export function readConfig(env: Env = process.env): Omit<Config, 'secretKey'> & { secretKeyHex?: string } {
  const problems: string[] = [];
  const str = (name: string, fallback: string): string => {
    const v = env[name];
    return v === undefined || v === '' ? fallback : v;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name}=${JSON.stringify(raw)} is not a whole number from ${min} to ${max}`);
      return fallback;
    }
    return Number(raw);
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    problems.push(`${name}=${JSON.stringify(raw)} must be true or false`);
    return fallback;
  };

  const dataDir = resolve(str('ONECLOUD_DATA_DIR', './data'));
  const httpHost = str('ONECLOUD_HTTP_HOST', '127.0.0.1');
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(httpHost)) {
    problems.push(`ONECLOUD_HTTP_HOST=${JSON.stringify(httpHost)} is not a host name or IP address`);
  }
  const httpPort = int('ONECLOUD_HTTP_PORT', 8080, 0, 65535);

  let databaseUrl = str('ONECLOUD_DATABASE_URL', `sqlite:${join(dataDir, 'onecloud.db')}`);
  if (databaseUrl.startsWith('sqlite:')) {
    const path = databaseUrl.slice('sqlite:'.length);
    if (path === '')
      problems.push('ONECLOUD_DATABASE_URL=sqlite: needs a file path, e.g. sqlite:./data/onecloud.db');
    else if (path !== ':memory:' && !isAbsolute(path)) databaseUrl = `sqlite:${resolve(path)}`;
  } else if (!/^postgres(ql)?:\/\/.+/.test(databaseUrl)) {
    problems.push(
      `ONECLOUD_DATABASE_URL=${JSON.stringify(redactUrl(databaseUrl))} must be sqlite:<path> or postgres://user:password@host:port/database`,
    );
  }

  const logLevel = str('ONECLOUD_LOG_LEVEL', 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`ONECLOUD_LOG_LEVEL=${JSON.stringify(logLevel)} must be one of ${LOG_LEVELS.join(', ')}`);
  }

  const secretKeyHex = env.ONECLOUD_SECRET_KEY;
  if (secretKeyHex !== undefined && secretKeyHex !== '' && !/^[0-9a-fA-F]{64,}$/.test(secretKeyHex)) {
    problems.push(
      'ONECLOUD_SECRET_KEY must be at least 64 hex digits (32 bytes); generate one with `openssl rand -hex 32`',
    );
  }

  const adminPassword = env.ONECLOUD_ADMIN_PASSWORD;
  if (adminPassword !== undefined && adminPassword !== '' && adminPassword.length < 8) {
    problems.push('ONECLOUD_ADMIN_PASSWORD must be at least 8 characters');
  }

  const bodyLimit = int('ONECLOUD_BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024);
  const xmlBodyLimit = int('ONECLOUD_XML_BODY_LIMIT', 256 * 1024, 1024, 16 * 1024 * 1024);
  const legacyPasswordTokens = bool('ONECLOUD_LEGACY_PASSWORD_TOKENS', true);
  const ticketMaxDays = int('ONECLOUD_TICKET_MAX_DAYS', 3650, 1, 36500);
  const authFailureLimit = int('ONECLOUD_AUTH_FAILURE_LIMIT', 30, 1, 1_000_000);
  const passwordTryLimit = int('ONECLOUD_PASSWORD_TRY_LIMIT', 10, 1, 1_000_000);
  const eventRetentionDays = int('ONECLOUD_EVENT_RETENTION_DAYS', 7, 1, 3650);
  const eventRetentionCount = int('ONECLOUD_EVENT_RETENTION_COUNT', 1_000_000, 1000, 1_000_000_000);
  const eventStreamsPerTicket = int('ONECLOUD_EVENT_STREAMS_PER_TICKET', 5, 1, 10_000);
  const eventStreamsPerOrganization = int('ONECLOUD_EVENT_STREAMS_PER_ORGANIZATION', 2000, 1, 1_000_000);
  const eventHeartbeatMs = int('ONECLOUD_EVENT_HEARTBEAT_SECONDS', 15, 1, 300) * 1000;
  const eventStreamMaxQueue = int('ONECLOUD_EVENT_STREAM_MAX_QUEUE', 10_000, 100, 1_000_000);
  const webhookAllowPrivate = bool('ONECLOUD_WEBHOOK_ALLOW_PRIVATE', false);

  const sipEnabled = bool('ONECLOUD_SIP_ENABLED', true);
  // SIP binds UDP and TCP to an address: `localhost` (a fine HTTP host) is read as 127.0.0.1.
  const sipHostRaw = str('ONECLOUD_SIP_HOST', httpHost);
  const sipHost = sipHostRaw === 'localhost' ? '127.0.0.1' : sipHostRaw;
  if (sipEnabled && isIP(sipHost) === 0) {
    problems.push(
      `ONECLOUD_SIP_HOST=${JSON.stringify(sipHostRaw)} must be an IP address such as 127.0.0.1 or 0.0.0.0`,
    );
  }
  // Via and Contact need an address phones can reach: the bound one, unless that is "any".
  const advertisedRaw = env.ONECLOUD_SIP_ADVERTISED_HOST;
  let advertisedHost = sipHost === '0.0.0.0' || sipHost === '::' ? '127.0.0.1' : sipHost;
  if (advertisedRaw !== undefined && advertisedRaw !== '') {
    const bare = advertisedRaw.replace(/^\[(.*)\]$/, '$1');
    const hostName =
      /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
    if (bare === '0.0.0.0' || bare === '::' || (isIP(bare) === 0 && !hostName.test(bare))) {
      if (sipEnabled)
        problems.push(
          `ONECLOUD_SIP_ADVERTISED_HOST=${JSON.stringify(advertisedRaw)} must be an IP address or host name that phones can reach, such as 192.0.2.10 or pbx.example.com (not 0.0.0.0 or ::)`,
        );
    } else {
      advertisedHost = bare;
    }
  }
  const sip: SipConfig = {
    enabled: sipEnabled,
    host: sipHost,
    advertisedHost,
    port: int('ONECLOUD_SIP_PORT', 5060, 0, 65535),
    t1Ms: int('ONECLOUD_SIP_T1_MS', 500, 10, 10_000),
    t2Ms: int('ONECLOUD_SIP_T2_MS', 4000, 10, 60_000),
    t4Ms: int('ONECLOUD_SIP_T4_MS', 5000, 10, 60_000),
    noAnswerTimeoutMs: int('ONECLOUD_SIP_NO_ANSWER_SECONDS', 60, 1, 3600) * 1000,
    overloadDelayMs: int('ONECLOUD_SIP_OVERLOAD_DELAY_MS', DEFAULT_OVERLOAD_TARGET_MS, 0, 60_000),
  };
  if (sip.t2Ms < sip.t1Ms) problems.push('ONECLOUD_SIP_T2_MS must not be less than ONECLOUD_SIP_T1_MS');

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    httpHost,
    httpPort,
    databaseUrl,
    dataDir,
    logLevel: logLevel as LogLevel,
    adminPassword: adminPassword === '' ? undefined : adminPassword,
    bodyLimit,
    xmlBodyLimit,
    legacyPasswordTokens,
    ticketMaxDays,
    authFailureLimit,
    passwordTryLimit,
    ticketCreateLimit: 30,
    noncePruneIntervalMs: 60_000,
    eventRetentionDays,
    eventRetentionCount,
    eventStreamsPerTicket,
    eventStreamsPerOrganization,
    eventHeartbeatMs,
    eventStreamMaxQueue,
    webhookAllowPrivate,
    sip,
    ...(secretKeyHex ? { secretKeyHex } : {}),
  };
}

/**
 * The server key: from ONECLOUD_SECRET_KEY, else from `<dataDir>/secret.key`, else generated
 * there (mode 0600) on first start.
 */
export function loadConfig(env: Env = process.env): Config {
  const { secretKeyHex, ...rest } = readConfig(env);
  let secretKey: Buffer;
  if (secretKeyHex) {
    secretKey = Buffer.from(secretKeyHex, 'hex');
  } else {
    const file = join(rest.dataDir, 'secret.key');
    if (existsSync(file)) {
      const hex = readFileSync(file, 'utf8').trim();
      if (!/^[0-9a-fA-F]{64,}$/.test(hex))
        throw new ConfigError([`${file} does not hold a hex key of 32+ bytes`]);
      secretKey = Buffer.from(hex, 'hex');
    } else {
      mkdirSync(rest.dataDir, { recursive: true });
      secretKey = randomBytes(32);
      writeFileSync(file, secretKey.toString('hex') + '\n', { mode: 0o600 });
      chmodSync(file, 0o600);
    }
  }
  return { ...rest, secretKey };
}

/** Hides the password of a database URL for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:/@]*:)[^@]*@/, '$1***@');
}
