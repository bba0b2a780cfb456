/**
 * The Kysely `DB` interface: one entry per table, column types as the drivers return them.
 *
 * - Timestamps are epoch milliseconds (`bigint` columns; the PostgreSQL pool parses int8 to numbers).
 * - Booleans are `BoolColumn`: PostgreSQL returns `boolean`, SQLite returns `0 | 1`. Write real
 *   booleans (the SQLite dialect converts them to 0/1); read them through `toBool()`.
 * - JSON columns are text: write with `toJson()`, read with `fromJson()` (src/db/dialects/index.ts).
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Read as boolean (PostgreSQL) or 0/1 (SQLite); written as boolean. */
export type BoolColumn = ColumnType<boolean | number, boolean, boolean>;
/** JSON text. */
export type JsonColumn = string;
/** An auto-increment bigint primary key (read as number). */
export type AutoId = Generated<number>;

export type Role = 'USER' | 'SUPERUSER';
export type Availability = 'AVAILABLE' | 'BUSY' | 'AWAY' | 'DND' | 'OFFLINE';
export type DeviceKind = 'MOBILE' | 'DESKPHONE' | 'SOFTPHONE';
export type AcdGroupType = 'ACD' | 'ACD_LIGHT' | 'ATTENDANT';
export type GrantLevel = 'ORGANIZATION' | 'USER_GROUP' | 'USER';
export type TicketKind = 'USER' | 'SYSTEM';

export interface SystemAdminsTable {
  id: AutoId;
  username: string;
  password_hash: string;
  created_at: number;
}

export interface OrganizationsTable {
  id: AutoId;
  domain: string;
  name: string;
  number_plan: JsonColumn;
  /** The organization's SIP trunk (JSON), null when it has none. */
  sip_trunk: JsonColumn | null;
  created_at: number;
  updated_at: number;
}

export interface UsersTable {
  id: AutoId;
  organization_id: number;
  user_id: string;
  role: Role;
  first_name: string;
  last_name: string;
  email: string | null;
  password_hash: string | null;
  language: string | null;
  title: string | null;
  department: string | null;
  extension: string | null;
  availability: ColumnType<Availability, Availability | undefined, Availability>;
  availability_message: string | null;
  /** md5(user:domain:password), only while legacy password tokens are on (0002_auth). */
  legacy_ha1: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: number;
  updated_at: number;
}

export interface UserGroupsTable {
  id: AutoId;
  organization_id: number;
  name: string;
  roles: JsonColumn;
  created_at: number;
  updated_at: number;
}

export interface UserGroupMembersTable {
  group_id: number;
  user_id: number;
  organization_id: number;
}

export interface NumbersTable {
  number: string;
  organization_id: number;
  user_id: number | null;
  acd_group_id: number | null;
  created_at: number;
}

export interface DevicesTable {
  id: AutoId;
  organization_id: number;
  user_id: number;
  kind: DeviceKind;
  device_key: string;
  name: string;
  icon: ColumnType<string, string | undefined, string>;
  sip_username: string | null;
  ha1_md5: string | null;
  ha1_sha256: string | null;
  number: string | null;
  created_at: number;
  updated_at: number;
}

export interface AcdGroupsTable {
  id: AutoId;
  organization_id: number;
  name: string;
  type: AcdGroupType;
  distribution_type: string;
  night_mode: BoolColumn;
  queue_timeout_seconds: number;
  overflow_destination: string | null;
  allow_using_function_number: BoolColumn;
  created_at: number;
  updated_at: number;
}

export interface AcdAgentsTable {
  group_id: number;
  user_id: number;
  organization_id: number;
  skill_level: number;
  logged_in: BoolColumn;
  logged_in_at: number | null;
}

export interface ExternalApiGrantsTable {
  organization_id: number;
  level: GrantLevel;
  target_id: number;
  api: string;
}

export interface TicketsTable {
  id: AutoId;
  kind: TicketKind;
  organization_id: number | null;
  user_id: number | null;
  name: string;
  scopes: JsonColumn;
  organizations: JsonColumn | null;
  secret_hash: string;
  signing_secret_enc: string | null;
  platform: string | null;
  created_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

export interface EventsTable {
  seq: AutoId;
  organization_id: number | null;
  type: string;
  time: number;
  user_id: number | null;
  group_id: number | null;
  data: JsonColumn;
}

export interface AuditLogTable {
  id: AutoId;
  organization_id: number | null;
  actor: string;
  action: string;
  entity: string;
  entity_id: string;
  data: JsonColumn;
  at: number;
}

export interface UsedNoncesTable {
  ticket_id: number;
  nonce: string;
  expires_at: number;
}

export type WebSessionKind = 'ADMIN' | 'USER';

export interface WebSessionsTable {
  id_hash: string;
  kind: WebSessionKind;
  admin_id: number | null;
  organization_id: number | null;
  user_id: number | null;
  csrf_token: string;
  created_at: number;
  expires_at: number;
}

/** Named positions in the event log (0003_events): `pruned_through`, `webhooks`. */
export interface EventLogStateTable {
  name: string;
  seq: number;
}

export interface WebhooksTable {
  id: AutoId;
  organization_id: number;
  url: string;
  /** AES-256-GCM with the server key (`encryptSecret`): needed in clear to sign. */
  secret_enc: string;
  event_types: JsonColumn;
  enabled: BoolColumn;
  consecutive_failures: ColumnType<number, number | undefined, number>;
  disabled_at: number | null;
  disabled_reason: string | null;
  created_at: number;
  updated_at: number;
}

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed' | 'dead';

export interface WebhookDeliveriesTable {
  id: AutoId;
  webhook_id: number;
  organization_id: number;
  event_seq: number;
  event_type: string;
  payload: string;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: number;
  status: ColumnType<WebhookDeliveryStatus, WebhookDeliveryStatus | undefined, WebhookDeliveryStatus>;
  last_status_code: number | null;
  last_error: string | null;
  lease_until: number | null;
  created_at: number;
  delivered_at: number | null;
}

/** A registered contact of a device (0004_telephony). */
export interface SipRegistrationsTable {
  id: AutoId;
  organization_id: number;
  device_id: number;
  user_id: number;
  aor: string;
  contact: string;
  call_id: string;
  cseq: number;
  source_transport: string;
  source_address: string;
  source_port: number;
  user_agent: string | null;
  expires_at: number;
  registered_at: number;
  updated_at: number;
}

/** One user leg of a finished call (0004_telephony). */
export interface CallRecordsTable {
  id: AutoId;
  organization_id: number;
  call_id: string;
  branch_id: string;
  direction: string;
  user_id: number | null;
  local_number: string | null;
  remote_number: string | null;
  device_type: string | null;
  started_at: number;
  answered_at: number | null;
  ended_at: number;
  termination_reason: string;
}

export interface DB {
  system_admins: SystemAdminsTable;
  organizations: OrganizationsTable;
  users: UsersTable;
  user_groups: UserGroupsTable;
  user_group_members: UserGroupMembersTable;
  numbers: NumbersTable;
  devices: DevicesTable;
  acd_groups: AcdGroupsTable;
  acd_agents: AcdAgentsTable;
  external_api_grants: ExternalApiGrantsTable;
  tickets: TicketsTable;
  events: EventsTable;
  audit_log: AuditLogTable;
  used_nonces: UsedNoncesTable;
  web_sessions: WebSessionsTable;
  event_log_state: EventLogStateTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  sip_registrations: SipRegistrationsTable;
  call_records: CallRecordsTable;
}

export type Row<T extends keyof DB> = Selectable<DB[T]>;
export type NewRow<T extends keyof DB> = Insertable<DB[T]>;
export type RowUpdate<T extends keyof DB> = Updateable<DB[T]>;
