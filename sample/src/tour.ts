/** One scripted session through the sample over real HTTP: what `npm run demo` shows. */
export interface TourStep {
  title: string;
  method: string;
  path: string;
  status: number;
}

export async function runTour(baseUrl: string, onStep: (step: TourStep) => void = () => undefined): Promise<TourStep[]> {
  const steps: TourStep[] = [];
  const call = async (title: string, method: string, path: string, options: { token?: string; body?: unknown } = {}) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
        'user-agent': 'nestjs-audit-demo/1.0',
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.text();
    const step = { title, method, path, status: response.status };
    steps.push(step);
    onStep(step);
    return text ? JSON.parse(text) : undefined;
  };
  const login = async (who: string, email: string, password: string) =>
    (await call(`${who} signs in`, 'POST', '/auth/login', { body: { email, password } })).token as string;

  await call('Alice mistypes her password', 'POST', '/auth/login', { body: { email: 'alice@example.com', password: 'wonderlnd' } });
  const alice = await login('Alice', 'alice@example.com', 'wonderland');
  const created = await call('Alice creates a document', 'POST', '/documents', { token: alice, body: { title: 'Q3 plan', body: 'Draft' } });
  const id = created.id as string;
  await call('Alice renames it', 'PATCH', `/documents/${id}`, { token: alice, body: { title: 'Q3 plan (final)' } });
  await call('Alice shares it with Bob', 'POST', `/documents/${id}/share`, {
    token: alice,
    body: { recipient: 'bob@example.com', permission: 'read' },
  });
  const bob = await login('Bob', 'bob@example.com', 'builder');
  await call('Bob tries to delete it (not his)', 'DELETE', `/documents/${id}`, { token: bob });
  await call('Bob tries to make himself admin', 'POST', '/admin/users/u-bob/roles', { token: bob, body: { role: 'admin' } });
  const carol = await login('Carol (admin)', 'carol@example.com', 'admin-carol');
  await call('Carol makes Bob an editor', 'POST', '/admin/users/u-bob/roles', { token: carol, body: { role: 'editor' } });
  await call('Bob exports what he can see', 'GET', '/exports/documents', { token: bob });
  await call('Bob tries to read the audit trail', 'GET', '/audit/events?actor_id=u-bob', { token: bob });
  await new Promise((resolve) => setTimeout(resolve, 300)); // events reach the store within flushInterval
  await call('Carol reads what Bob did', 'GET', '/audit/events?actor_id=u-bob', { token: carol });
  await call('Alice reads it (a GET: not audited)', 'GET', `/documents/${id}`, { token: alice });
  await call('Alice deletes it', 'DELETE', `/documents/${id}`, { token: alice });
  await call('Someone without a token tries to create one', 'POST', '/documents', { body: { title: 'spam' } });
  return steps;
}
