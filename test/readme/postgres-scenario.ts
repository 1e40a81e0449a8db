import { expect } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { AuditService } from 'nestjs-audit';

/**
 * The README's postgres example, end to end: forRoot({ sink: store }), then what an auditor asks, over HTTP
 * and in code. Set the example's environment (AUDIT_DATABASE_URL or AUDIT_PGLITE_DIR, AUDIT_CHECKPOINTS, …)
 * before calling: the example builds its store when first imported, once per test file.
 */
export async function runPostgresExample(): Promise<void> {
  const { AuditTrailModule, auditorQuestions, store } = await import('./postgres.example.js');
  const moduleRef = await Test.createTestingModule({ imports: [AuditTrailModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  try {
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    const audit = app.get(AuditService);
    audit.log({ action: 'document.share', resource: { type: 'document', id: 'doc-123' }, metadata: { shared_with: 'u-bob' } });
    audit.log({ action: 'user.login', outcome: 'failure', resource: { type: 'user', id: 'u-x' } });
    await audit.flush();
    await store.checkpoint();
    const answers = await auditorQuestions(store);
    expect(answers.shares.events).toHaveLength(1);
    expect(answers.integrity).toMatchObject({ ok: true, checked: 2, checkpointsMatched: 1 });
    expect(answers.csv.split('\r\n')[0]).toMatch(/^id,timestamp/);
    const denied = await fetch(`${url}/audit/events`);
    expect(denied.status).toBe(403);
    const allowed = await fetch(`${url}/audit/events?action=document.share`, { headers: { 'x-role': 'auditor' } });
    expect(((await allowed.json()) as { events: unknown[] }).events).toHaveLength(1);
  } finally {
    await app.close();
  }
}
