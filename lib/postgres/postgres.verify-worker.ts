// A worker thread of verifyInParallel(): verifies one range of the chain over its own connection.
import { parentPort, workerData } from 'node:worker_threads';
import { openConnection } from './postgres.connection.js';
import { tableNames } from './postgres.schema.js';
import { verifyRange } from './postgres.verify.js';

const data = workerData as { connectionString: string; schema: string; table: string; from: string; to: string };

void (async () => {
  const connection = await openConnection({ connectionString: data.connectionString, max: 2 });
  try {
    const result = await verifyRange(connection, tableNames(data.schema, data.table), BigInt(data.from), BigInt(data.to), true);
    parentPort!.postMessage(result);
  } catch (error) {
    parentPort!.postMessage({ error: String(error) });
  } finally {
    await connection.close();
  }
})();
