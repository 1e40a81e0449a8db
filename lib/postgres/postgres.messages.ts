/** Message texts of nestjs-audit/postgres, kept apart from the logic that raises them. */
export const STORE_MESSAGES = {
  invalidQuery: (call: string, issues: string[]) =>
    `Invalid ${call} arguments:\n${issues.map((issue) => `  - ${issue}`).join('\n')}\n` +
    `Potential solutions:\n  - Fix the fields above; the "Store, search and verify" section of the nestjs-audit README lists ` +
    `each filter and its type.`,
  invalidOptions: (issues: string[]) =>
    `Invalid PostgresAuditStore options:\n${issues.map((issue) => `  - ${issue}`).join('\n')}\n` +
    `Potential solutions:\n  - Fix the fields above in new PostgresAuditStore() / PostgresAuditStore.create().`,
  noTrail: (table: string, error: string) =>
    `There is no audit trail at ${table} (${error}).\n` +
    `Potential solutions:\n  - Check the schema and table names (--schema, --table).\n` +
    `  - Open the store once with migrate: true (the default), as a role that may create it.`,
  oldSchema: (table: string, found: number, needed: number) =>
    `The audit trail at ${table} has schema version ${found}; this version of nestjs-audit needs ${needed}.\n` +
    `Potential solutions:\n  - Open the store once with migrate: true (the default), as the role that owns the table: ` +
    `the upgrade runs in place and keeps every row.`,
  badTimestamp: (id: string, timestamp: unknown) =>
    `PostgresAuditStore: event ${JSON.stringify(id)} has timestamp ${JSON.stringify(timestamp)}, which is not an RFC 3339 ` +
    `date-time with at most millisecond precision (e.g. 2026-01-01T12:00:00.000Z). The batch is refused, not stored.`,
} as const;
