import { setImmediate as nextTurn } from 'node:timers/promises';

/** The part of `pg`'s protocol connection a streamed COPY needs. */
interface CopyConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
  stream?: NodeJS.WritableStream & { writableNeedDrain?: boolean };
}

/** A `pg` client (the JavaScript one, not pg-native), which takes custom submittables. */
export interface CopyCapableClient {
  connection: CopyConnection;
  query(submittable: object): unknown;
}

/** Whether `client` can stream a COPY: `pg`'s JavaScript client can; pg-native and look-alikes fall back to INSERT. */
export function canCopy(client: unknown): client is CopyCapableClient {
  const connection = (client as { connection?: Partial<CopyConnection> } | null)?.connection;
  return typeof connection?.sendCopyFromChunk === 'function' && typeof connection.endCopyFrom === 'function' && typeof connection.sendCopyFail === 'function';
}

/**
 * Runs `COPY … FROM STDIN` (text format) on `client`, sending each chunk as it
 * is produced: the server stores one chunk while the next is built, so a
 * batch costs about the larger of the two, not their sum. A chunk that throws
 * aborts the COPY (CopyFail) and rejects with that error; a server error
 * rejects with the server's.
 */
export function copyFrom(client: CopyCapableClient, sql: string, chunks: Iterable<string>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let finished = false;
    let clientError: unknown;
    const finish = (error: unknown) => {
      if (finished) return;
      finished = true;
      if (error === undefined) resolve();
      else reject(error);
    };
    const pump = async (connection: CopyConnection) => {
      try {
        for (const chunk of chunks) {
          if (finished) return; // the server refused: what follows would be dropped anyway
          connection.sendCopyFromChunk(Buffer.from(chunk, 'utf8'));
          const stream = connection.stream;
          if (stream?.writableNeedDrain) await new Promise<void>((done) => drainOrClose(stream, done));
          else await nextTurn(); // lets the socket flush and a server error arrive
        }
        if (!finished) connection.endCopyFrom();
      } catch (error) {
        clientError = error;
        if (!finished) connection.sendCopyFail(`nestjs-audit: ${String(error)}`.slice(0, 500));
      }
    };
    // The submittable protocol of pg's Client: it calls these as the server answers.
    client.query({
      submit: (connection: CopyConnection) => connection.query(sql),
      handleCopyInResponse: (connection: CopyConnection) => void pump(connection),
      handleError: (error: unknown) => finish(clientError ?? error),
      handleReadyForQuery: () => finish(clientError),
      handleCommandComplete: () => undefined,
      handleRowDescription: () => undefined,
      handleDataRow: () => undefined,
      handleEmptyQuery: () => undefined,
      handlePortalSuspended: () => undefined,
      handleCopyData: () => undefined,
    });
  });
}

function drainOrClose(stream: NodeJS.WritableStream, done: () => void): void {
  const settle = () => {
    stream.removeListener('drain', settle);
    stream.removeListener('close', settle);
    done();
  };
  stream.once('drain', settle);
  stream.once('close', settle);
}

/** A value in COPY's text format: backslash, tab, newline and carriage return escaped. */
export function copyText(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code === 0x5c || code === 0x09 || code === 0x0a || code === 0x0d) return value.replace(COPY_SPECIAL, escapeCopy);
  }
  return value;
}

const COPY_SPECIAL = /[\\\t\n\r]/g;

function escapeCopy(char: string): string {
  return char === '\\' ? '\\\\' : char === '\t' ? '\\t' : char === '\n' ? '\\n' : '\\r';
}
