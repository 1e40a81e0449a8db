import { CanActivate, ExecutionContext, Injectable, Module } from '@nestjs/common';
import { AuditModule } from 'nestjs-audit';
import { AuditTrailHttpModule, PostgresAuditStore } from 'nestjs-audit/postgres';

/** One store: the sink the module writes to, and the object your code (and auditors) query. */
export const store = new PostgresAuditStore({
  // A server in production; PGlite (PostgreSQL in-process, nothing to install) everywhere else.
  connection: process.env.AUDIT_DATABASE_URL
    ? { connectionString: process.env.AUDIT_DATABASE_URL }
    : { pglite: { dataDir: process.env.AUDIT_PGLITE_DIR ?? '.data/audit' } },
  schema: process.env.AUDIT_SCHEMA ?? 'audit',
  checkpoints: {
    key: { hmac: process.env.AUDIT_CHECKPOINT_KEY ?? 'dev-only checkpoint key, 32 bytes or more' },
    keyId: 'k1',
    file: process.env.AUDIT_CHECKPOINTS ?? 'audit-checkpoints.jsonl', // keep it outside the database
    every: 1000,
  },
});

@Injectable()
export class AuditorGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToHttp().getRequest().headers['x-role'] === 'auditor'; // your real auth here
  }
}

@Module({
  imports: [
    AuditModule.forRoot({ sink: store, maxBatchSize: 500 }),
    AuditTrailHttpModule.forRoot({ store, guards: [AuditorGuard] }), // GET /audit/events, /audit/events/export
  ],
  providers: [{ provide: PostgresAuditStore, useValue: store }],
  exports: [PostgresAuditStore],
})
export class AuditTrailModule {}

/** What an auditor asks. */
export async function auditorQuestions(trail: PostgresAuditStore) {
  const shares = await trail.search({ action: 'document.share', resource_id: 'doc-123' });
  const failedLogins = await trail.search({ action: 'user.login', outcome: 'failure', from: '2026-11-26T00:00:00Z', to: '2026-11-27T00:00:00Z' });
  let csv = '';
  for await (const chunk of trail.export({ from: '2026-07-01T00:00:00Z', to: '2026-10-01T00:00:00Z' }, 'csv')) csv += chunk;
  const integrity = await trail.verify({ checkpoints: { from: process.env.AUDIT_CHECKPOINTS ?? 'audit-checkpoints.jsonl', key: { hmac: process.env.AUDIT_CHECKPOINT_KEY ?? 'dev-only checkpoint key, 32 bytes or more' } } });
  return { shares, failedLogins, csv, integrity };
}
