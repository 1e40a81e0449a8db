import {
  IsArray,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateBy,
  validateSync,
  type ValidationError,
  type ValidationOptions,
} from 'class-validator';
import { AuditConfigurationError } from './audit.errors.js';
import { AUDIT_DEFAULTS, HTTP_METHODS, type AuditHttpOptions, type AuditModuleOptions } from './audit.options.js';
import type { AuditActor } from './event/audit-event.interface.js';
import { pseudonymizeIssues, type AuditPseudonymizeOptions } from './event/audit.pseudonymizer.js';
import type { AuditRedactionOptions } from './event/audit.redaction.js';
import type { AuditSnapshotLimits } from './event/audit.snapshot.js';
import { ConsoleAuditSink } from './sinks/console.sink.js';
import type { AuditSink } from './sinks/audit.sink.js';

function IsFunctionValue(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    { name: 'isFunctionValue', validator: { validate: (value) => typeof value === 'function' } },
    { message: 'must be a function', ...options },
  );
}

function isSink(value: unknown): value is AuditSink {
  return typeof value === 'object' && value !== null && typeof (value as AuditSink).write === 'function';
}

function IsSinkOrSinks(): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isSinkOrSinks',
      validator: {
        validate: (value) => (Array.isArray(value) ? value.length > 0 && value.every(isSink) : isSink(value)),
      },
    },
    { message: 'must be an AuditSink (an object with a write(events) method) or a non-empty array of them' },
  );
}

function IsHttpOption(): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isHttpOption',
      validator: {
        validate: (value) => value === false || (typeof value === 'object' && value !== null && !Array.isArray(value)),
      },
    },
    { message: 'must be false or an object { methods?: string[], exclude?: (string | RegExp)[] }' },
  );
}

function IsPathPattern(): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isPathPattern',
      validator: {
        validate: (value) =>
          Array.isArray(value) &&
          value.every((item) => item instanceof RegExp || (typeof item === 'string' && item.startsWith('/'))),
      },
    },
    { message: "must be an array of paths starting with '/' (globs allowed) or RegExps" },
  );
}

const INTEGER_MS = { message: 'must be an integer number of milliseconds' };

class ActorSchema {
  @IsString({ message: 'must be a string' })
  @MinLength(1, { message: 'must not be empty' })
  @MaxLength(512, { message: 'must be at most 512 characters' })
  id!: string;

  @IsOptional()
  @IsString({ message: 'must be a string' })
  type?: string;

  @IsOptional()
  @IsString({ message: 'must be a string' })
  email?: string;
}

class HttpSchema {
  @IsOptional()
  @IsArray({ message: 'must be an array of HTTP methods' })
  @IsIn(HTTP_METHODS as unknown as string[], {
    each: true,
    message: `must contain only ${HTTP_METHODS.join(', ')} (upper case)`,
  })
  methods?: string[];

  @IsOptional()
  @IsPathPattern()
  exclude?: (string | RegExp)[];
}

function IsArrayOf(check: (item: unknown) => boolean, message: string): PropertyDecorator {
  return ValidateBy(
    { name: 'isArrayOf', validator: { validate: (value) => Array.isArray(value) && value.every(check) } },
    { message },
  );
}

class RedactionSchema {
  @IsOptional()
  @IsArrayOf((item) => typeof item === 'string' && item.length > 0, 'must be an array of key names')
  keys?: unknown;

  @IsOptional()
  @IsArrayOf((item) => item instanceof RegExp, 'must be an array of RegExps')
  patterns?: unknown;

  @IsOptional()
  @IsArrayOf((item) => typeof item === 'string' && item.length > 0, 'must be an array of key names')
  allowKeys?: unknown;

  @IsOptional()
  @IsFunctionValue({ message: 'must be a function (value, path) => value' })
  redact?: unknown;
}

class LimitsSchema {
  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(1, { message: 'must be at least 1' })
  @Max(1000, { message: 'must be at most 1000' })
  maxDepth?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(1, { message: 'must be at least 1' })
  maxKeys?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(1, { message: 'must be at least 1' })
  maxArrayItems?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(16, { message: 'must be at least 16' })
  maxStringLength?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(256, { message: 'must be at least 256' })
  maxMetadataBytes?: number;
}

class RetrySchema {
  @IsOptional()
  @IsInt(INTEGER_MS)
  @Min(1, { message: 'must be at least 1 (ms)' })
  initialDelay?: number;

  @IsOptional()
  @IsInt(INTEGER_MS)
  @Min(1, { message: 'must be at least 1 (ms)' })
  maxDelay?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(1, { message: 'must be at least 1' })
  maxAttempts?: number;

  @IsOptional()
  @IsInt(INTEGER_MS)
  @Min(1, { message: 'must be at least 1 (ms)' })
  maxElapsed?: number;

  @IsOptional()
  @IsInt(INTEGER_MS)
  @Min(1, { message: 'must be at least 1 (ms)' })
  attemptTimeout?: number;
}

class SpoolSchema {
  @IsString({ message: 'must be the path of a folder' })
  @MinLength(1, { message: 'must be the path of a folder' })
  dir!: string;

  @IsOptional()
  @IsInt(INTEGER_MS)
  @Min(1, { message: 'must be at least 1 (ms)' })
  fsyncInterval?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(64 * 1024, { message: 'must be at least 65 536 (bytes)' })
  maxBytes?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(4096, { message: 'must be at least 4096 (bytes)' })
  segmentBytes?: number;
}

class AuditOptionsSchema {
  @IsOptional()
  @IsSinkOrSinks()
  sink?: unknown;

  @IsOptional()
  @IsInt(INTEGER_MS)
  @Min(1, { message: 'must be at least 1 (ms)' })
  @Max(3_600_000, { message: 'must be at most 3 600 000 (one hour)' })
  flushInterval?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(1, { message: 'must be at least 1' })
  @Max(100_000, { message: 'must be at most 100 000' })
  maxBatchSize?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(1, { message: 'must be at least 1' })
  maxQueueSize?: number;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(1024, { message: 'must be at least 1024 (bytes)' })
  maxQueueBytes?: number;

  @IsOptional()
  @IsIn(['drop-newest', 'drop-oldest', 'spool'], { message: "must be 'drop-newest', 'drop-oldest' or 'spool'" })
  overflow?: string;

  @IsOptional()
  retry?: unknown;

  @IsOptional()
  @IsInt({ message: 'must be an integer' })
  @Min(1, { message: 'must be at least 1' })
  @Max(64, { message: 'must be at most 64' })
  maxConcurrentBatches?: number;

  @IsOptional()
  spool?: unknown;

  @IsOptional()
  @IsFunctionValue({ message: 'must be a function (events, error) => void | Promise<void>' })
  onDeadLetter?: unknown;

  @IsOptional()
  @IsString({ message: 'must be a file path' })
  @MinLength(1, { message: 'must be a file path' })
  deadLetterPath?: unknown;

  @IsOptional()
  @IsFunctionValue({ message: 'must be a function (error, info) => void' })
  onError?: unknown;

  @IsOptional()
  @IsFunctionValue({ message: 'must be a function (info) => void' })
  onDrop?: unknown;

  @IsOptional()
  @IsHttpOption()
  http?: unknown;

  @IsOptional()
  @IsFunctionValue({ message: 'must be a function (request) => AuditActor | undefined' })
  actor?: unknown;

  @IsOptional()
  @IsFunctionValue({ message: 'must be a function (request) => { tenant_id?, session_id? } | undefined' })
  context?: unknown;

  @IsOptional()
  systemActor?: unknown;

  @IsOptional()
  @IsInt(INTEGER_MS)
  @Min(0, { message: 'must be at least 0 (ms)' })
  shutdownTimeout?: number;

  @IsOptional()
  redaction?: unknown;

  @IsOptional()
  limits?: unknown;

  @IsOptional()
  pseudonymize?: unknown;
}

/** The transport's delivery options, passed through as given (the transport holds their defaults). */
export type DeliveryOptions = Pick<
  AuditModuleOptions,
  'maxQueueBytes' | 'overflow' | 'retry' | 'maxConcurrentBatches' | 'spool' | 'onDeadLetter' | 'deadLetterPath' | 'onError' | 'onDrop'
>;

/** The options after validation, with every default applied. */
export interface ResolvedAuditOptions {
  sinks: AuditSink[];
  flushInterval: number;
  maxBatchSize: number;
  maxQueueSize: number;
  delivery: DeliveryOptions;
  http: false | { methods: ReadonlySet<string>; exclude: RegExp[] };
  actor: NonNullable<AuditModuleOptions['actor']>;
  context: AuditModuleOptions['context'];
  systemActor: AuditActor;
  shutdownTimeout: number;
  redaction: AuditRedactionOptions;
  limits: AuditSnapshotLimits;
  pseudonymize: AuditPseudonymizeOptions | undefined;
}

/**
 * Validates user options (class-validator) and applies defaults. Throws one
 * {@link AuditConfigurationError} listing every bad field.
 */
export function resolveAuditOptions(
  options: AuditModuleOptions | undefined,
  defaultActor: NonNullable<AuditModuleOptions['actor']>,
): ResolvedAuditOptions {
  const input = (options ?? {}) as Record<string, unknown>;
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new AuditConfigurationError([`options: must be an object, got ${describe(input)}`]);
  }
  const issues: string[] = [];
  const known = new Set(SCHEMA_KEYS);
  for (const key of Object.keys(input)) {
    if (!known.has(key)) issues.push(`${key}: is not an AuditModule option (known: ${SCHEMA_KEYS.join(', ')})`);
  }
  const schema = Object.assign(new AuditOptionsSchema(), input);
  issues.push(...collect(validateSync(schema, { forbidUnknownValues: false }), input));

  if (input.systemActor !== undefined) {
    if (!isPlainObject(input.systemActor)) {
      issues.push(`systemActor: must be an object { id, type?, email? }, got ${describe(input.systemActor)}`);
    } else {
      const actor = Object.assign(new ActorSchema(), input.systemActor);
      issues.push(...collect(validateSync(actor), input.systemActor as Record<string, unknown>, 'systemActor.'));
    }
  }
  if (isPlainObject(input.http)) {
    const http = Object.assign(new HttpSchema(), input.http);
    issues.push(...collect(validateSync(http), input.http as Record<string, unknown>, 'http.'));
  }
  issues.push(...nested(input, 'redaction', RedactionSchema, ['keys', 'patterns', 'allowKeys', 'redact']));
  issues.push(...nested(input, 'limits', LimitsSchema, ['maxDepth', 'maxKeys', 'maxArrayItems', 'maxStringLength', 'maxMetadataBytes']));
  if (input.pseudonymize !== undefined) issues.push(...pseudonymizeIssues(input.pseudonymize));
  issues.push(...nested(input, 'retry', RetrySchema, ['initialDelay', 'maxDelay', 'maxAttempts', 'maxElapsed', 'attemptTimeout']));
  issues.push(...nested(input, 'spool', SpoolSchema, ['dir', 'fsyncInterval', 'maxBytes', 'segmentBytes']));
  const retry = input.retry as { initialDelay?: number; maxDelay?: number } | undefined;
  if (retry && typeof retry.initialDelay === 'number' && typeof retry.maxDelay === 'number' && retry.maxDelay < retry.initialDelay) {
    issues.push(`retry.maxDelay: must be at least retry.initialDelay (${retry.initialDelay}), got ${retry.maxDelay}`);
  }
  const spool = input.spool as { maxBytes?: unknown; segmentBytes?: unknown } | undefined;
  if (isPlainObject(spool) && typeof spool.segmentBytes === 'number') {
    const maxBytes = typeof spool.maxBytes === 'number' ? spool.maxBytes : AUDIT_DEFAULTS.spool.maxBytes;
    if (spool.segmentBytes > maxBytes) {
      issues.push(`spool.segmentBytes: must be at most spool.maxBytes (${maxBytes}): a segment is deleted only once all of it is delivered, got ${spool.segmentBytes}`);
    }
  }
  if (input.overflow === 'spool' && input.spool === undefined) {
    issues.push("overflow: 'spool' needs the spool option ({ dir }), got no spool");
  }
  if (issues.length > 0) {
    throw new AuditConfigurationError(issues);
  }

  const sink = input.sink as AuditSink | AuditSink[] | undefined;
  const http = input.http as false | AuditHttpOptions | undefined;
  return {
    sinks: sink === undefined ? [new ConsoleAuditSink()] : Array.isArray(sink) ? [...sink] : [sink],
    flushInterval: (input.flushInterval as number | undefined) ?? AUDIT_DEFAULTS.flushInterval,
    maxBatchSize: (input.maxBatchSize as number | undefined) ?? AUDIT_DEFAULTS.maxBatchSize,
    maxQueueSize: (input.maxQueueSize as number | undefined) ?? AUDIT_DEFAULTS.maxQueueSize,
    delivery: {
      maxQueueBytes: input.maxQueueBytes as number | undefined,
      overflow: input.overflow as DeliveryOptions['overflow'],
      retry: input.retry as DeliveryOptions['retry'],
      maxConcurrentBatches: input.maxConcurrentBatches as number | undefined,
      spool: input.spool as DeliveryOptions['spool'],
      onDeadLetter: input.onDeadLetter as DeliveryOptions['onDeadLetter'],
      deadLetterPath: input.deadLetterPath as string | undefined,
      onError: input.onError as DeliveryOptions['onError'],
      onDrop: input.onDrop as DeliveryOptions['onDrop'],
    },
    http:
      http === false
        ? false
        : {
            methods: new Set(http?.methods ?? AUDIT_DEFAULTS.http.methods),
            exclude: (http?.exclude ?? AUDIT_DEFAULTS.http.exclude).map(toPathMatcher),
          },
    actor: (input.actor as ResolvedAuditOptions['actor'] | undefined) ?? defaultActor,
    context: input.context as ResolvedAuditOptions['context'],
    systemActor: { ...((input.systemActor as AuditActor | undefined) ?? AUDIT_DEFAULTS.systemActor) },
    shutdownTimeout: (input.shutdownTimeout as number | undefined) ?? AUDIT_DEFAULTS.shutdownTimeout,
    redaction: { ...(input.redaction as AuditRedactionOptions | undefined) },
    limits: resolveLimits(input.limits as Record<string, number | undefined> | undefined),
    pseudonymize: input.pseudonymize as AuditPseudonymizeOptions | undefined,
  };
}

function resolveLimits(limits: Record<string, number | undefined> = {}): AuditSnapshotLimits {
  const defaults = AUDIT_DEFAULTS.limits;
  return {
    maxDepth: limits.maxDepth ?? defaults.maxDepth,
    maxKeys: limits.maxKeys ?? defaults.maxKeys,
    maxArrayItems: limits.maxArrayItems ?? defaults.maxArrayItems,
    maxStringLength: limits.maxStringLength ?? defaults.maxStringLength,
    maxBytes: limits.maxMetadataBytes ?? defaults.maxMetadataBytes,
  };
}

/** Validates an optional object option against its schema, naming unknown keys too. */
function nested(input: Record<string, unknown>, name: string, Schema: new () => object, known: string[]): string[] {
  const value = input[name];
  if (value === undefined) return [];
  if (!isPlainObject(value)) return [`${name}: must be an object, got ${describe(value)}`];
  const issues = Object.keys(value)
    .filter((key) => !known.includes(key))
    .map((key) => `${name}.${key}: is not a ${name} option (known: ${known.join(', ')})`);
  return issues.concat(collect(validateSync(Object.assign(new Schema(), value)), value, `${name}.`));
}

/** Every option `AuditModule` knows (the README's options table lists each, with its default). */
export const SCHEMA_KEYS = [
  'maxQueueBytes',
  'overflow',
  'retry',
  'maxConcurrentBatches',
  'spool',
  'onDeadLetter',
  'deadLetterPath',
  'onError',
  'onDrop',
  'redaction',
  'limits',
  'pseudonymize',
  'sink',
  'flushInterval',
  'maxBatchSize',
  'maxQueueSize',
  'http',
  'actor',
  'context',
  'systemActor',
  'shutdownTimeout',
];

function collect(errors: ValidationError[], values: Record<string, unknown>, prefix = ''): string[] {
  return errors.flatMap((error) => {
    // One line per field, with the first rule it breaks in declaration order (the type before the
    // range); class-validator lists the constraints of a property in reverse declaration order.
    const messages = Object.values(error.constraints ?? {});
    return messages.length > 0
      ? [`${prefix}${error.property}: ${messages[messages.length - 1]}, got ${describe(values[error.property])}`]
      : [];
  });
}

/** Turns an exclude pattern into an anchored RegExp over the path. */
export function toPathMatcher(pattern: string | RegExp): RegExp {
  if (pattern instanceof RegExp) return pattern;
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === '*') {
      if (pattern[i + 1] === '*') {
        source += '.*';
        i++;
      } else {
        source += '[^/]*';
      }
    } else {
      source += char.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}/?$`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (value instanceof RegExp) return String(value);
  try {
    const json = JSON.stringify(value);
    if (json === undefined) return String(value);
    return json.length > 80 ? `${json.slice(0, 77)}...` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
