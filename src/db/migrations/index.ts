import type { Migration } from 'kysely';
import * as m0001 from './0001_core.js';
import * as m0002 from './0002_auth.js';
import * as m0003 from './0003_events.js';
import * as m0004 from './0004_telephony.js';
import * as m0005 from './0005_sip_trunk.js';
import * as m0006 from './0006_group_numbers.js';

/** Every migration, in order. Add new ones here (no file system scanning: works when bundled). */
export const migrations: Record<string, Migration> = {
  '0001_core': m0001,
  '0002_auth': m0002,
  '0003_events': m0003,
  '0004_telephony': m0004,
  '0005_sip_trunk': m0005,
  '0006_group_numbers': m0006,
};
