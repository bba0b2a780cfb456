/**
 * Who makes a change, as written to the audit log: `admin:<name>`, `ticket:<id>`,
 * `user:<user@domain>`, `cli`, `system`.
 */
export type Actor = string;
