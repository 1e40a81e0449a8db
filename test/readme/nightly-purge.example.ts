import { Injectable } from '@nestjs/common';
import { Audit, AuditContext } from 'nestjs-audit';

@Injectable()
export class RetentionService {
  @Audit('document.purge', 'document', { resourceId: ({ args: [id] }) => id })
  async purge(id: string) {
    return { id, purged: true };
  }
}

@Injectable()
export class NightlyPurge {
  constructor(private readonly retention: RetentionService) {}

  // Outside a request events carry the systemActor; here, the job's own service account.
  run(ids: string[]) {
    return AuditContext.run({ actor: { id: 'svc-retention', type: 'service' } }, () =>
      Promise.all(ids.map((id) => this.retention.purge(id))),
    );
  }
}
