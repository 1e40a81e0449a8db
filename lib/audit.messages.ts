/** Message texts, kept apart from the logic that raises them. */
export const MESSAGES = {
  invalidOptions: (issues: string[]) =>
    `Invalid AuditModule options:\n${issues.map((issue) => `  - ${issue}`).join('\n')}\n` +
    `Potential solutions:\n  - Fix the fields above in AuditModule.forRoot() / forRootAsync().\n` +
    `  - See the options table in the nestjs-audit README for types and defaults.`,
  invalidEvent: (issues: string[]) =>
    `Invalid audit event:\n${issues.map((issue) => `  - ${issue}`).join('\n')}\n` +
    `Potential solutions:\n  - Pass { action: 'resource.verb', resource: { type, id } } and, optionally, ` +
    `outcome: 'success' | 'failure' and a metadata object.`,
  invalidDiffOptions: (issues: string[]) =>
    `Invalid auditDiff() options:\n${issues.map((issue) => `  - ${issue}`).join('\n')}\n` +
    `Potential solutions:\n  - Pass { include?: string[], exclude?: string[] } with dotted paths, like ['email', 'address.city'].`,
  invalidDecorator: (where: string, issues: string[]) =>
    `Invalid @Audit() on ${where}:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`,
  contextRequired: (what: string) =>
    `${what} needs an audit context, and none is active.\n` +
    `Potential solutions:\n  - Call it while serving a request of an app that imports AuditModule.\n` +
    `  - Or wrap the work in AuditContext.run({ actor }, () => ...).`,
  sinkFailed: (sink: string, count: number, error: string) =>
    `Audit sink ${sink} failed to write a batch of ${count} event(s): ${error}`,
  dropped: (reason: string, count: number, total: number) =>
    `Dropped ${count} audit event(s) (${reason}); ${total} dropped since start. Check the sink and the queue options.`,
  sinkAttemptFailed: (sink: string, count: number, attempt: number, next: string, error: string) =>
    `Audit sink ${sink} failed to write ${count} event(s) (attempt ${attempt}; next: ${next}): ${error}`,
  deadLettered: (count: number, sink: string, error: string, where: string) =>
    `Dead-lettered ${count} audit event(s) that ${sink} will not take (${error}); they are in ${where}.`,
  shutdownSpooled: (pending: number, timeout: number, dir: string) =>
    `Audit transport could not deliver ${pending} event(s) within shutdownTimeout (${timeout} ms); ` +
    `they stay in the spool (${dir}) and are delivered at the next start.`,
  spoolLocked: (dir: string, pid: number | undefined, sameProcess: boolean) =>
    `The audit spool folder ${dir} is in use by ${sameProcess ? 'another transport of this process' : pid === undefined ? 'another process' : `process ${pid}`} (see spool.lock in it).\n` +
    `Potential solutions:\n  - Give each process (each app, each worker) its own spool.dir.\n` +
    `  - Close the other transport first (app.close()), or stop the other process.\n` +
    `  - If no such process runs, delete ${dir}/spool.lock.`,
  spoolRecovered: (pending: number, dir: string) =>
    `Audit spool: ${pending} event(s) from an earlier run, found in ${dir}, will be delivered.`,
  spoolCloseTimedOut: (dir: string) =>
    `Audit spool (${dir}) did not finish writing within shutdownTimeout; events appended last may be missing from it at the next start.`,
  shutdownTimeout: (pending: number, timeout: number) =>
    `Audit transport could not deliver ${pending} event(s) within shutdownTimeout (${timeout} ms); they are lost.`,
  unrouted: (action: string) =>
    `An @Audit() method ran outside any request of an app that imports AuditModule, while several such apps ` +
    `are running, so the event "${action}" has no app to go to; it was dropped.\n` +
    `Potential solutions:\n  - Let Nest create the object (a provider), or call it inside AuditContext.run().`,
  noApp: (action: string) =>
    `An @Audit() method ran while no app that imports AuditModule is running; the event "${action}" was dropped.`,
  callbackFailed: (what: string, error: string) => `${what} threw, which nestjs-audit ignored: ${error}`,
  closed: (action: string) => `Audit transport is closed; the event "${action}" was dropped.`,
} as const;
