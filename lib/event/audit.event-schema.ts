import {
  IsIn,
  IsString,
  Matches,
  MaxLength,
  ValidateBy,
  ValidateIf,
  validateSync,
  type ValidationError,
} from 'class-validator';
import { AuditValidationError } from '../audit.errors.js';
import type { AuditActor, AuditOutcome } from './audit-event.interface.js';
import { diffOptionIssues } from './audit.diff.js';

/** `resource.verb`: lower case, dot-separated (`user.login`, `document.share`, `api.post`). */
export const ACTION_PATTERN = /^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*$/;
/** A resource type: lower case (`document`, `api_endpoint`). */
export const RESOURCE_TYPE_PATTERN = /^[a-z0-9][a-z0-9_.-]*$/;
export const MAX_NAME_LENGTH = 128;
export const MAX_RESOURCE_ID_LENGTH = 512;

/**
 * What `AuditService.log()` accepts. Actor and context are filled from the
 * current request (or the system actor) unless given.
 *
 * @publicApi
 */
export interface AuditLogInput {
  /** `resource.verb`, lower case, dot-separated: `document.share`. */
  action: string;
  resource: { type: string; id: string | number };
  /** Default `success`. */
  outcome?: AuditOutcome;
  metadata?: Record<string, unknown>;
  /** Overrides the actor of the current context. */
  actor?: AuditActor;
  /** Why it failed; an Error or `{ name?, message, status_code? }`. */
  error?: Error | { name?: string; message: string; status_code?: number };
}

/** Like IsOptional, but only `undefined` is absent: an explicit `null` is a mistake worth naming. */
function IsAbsentOr(): PropertyDecorator {
  return ValidateIf((_object, value) => value !== undefined);
}

function IsResourceId(): PropertyDecorator {
  return ValidateBy(
    { name: 'isResourceId', validator: { validate: isResourceId } },
    { message: `must be a non-empty string of at most ${MAX_RESOURCE_ID_LENGTH} characters, or a finite number` },
  );
}

function IsPlainObjectValue(message: string): PropertyDecorator {
  return ValidateBy({ name: 'isPlainObjectValue', validator: { validate: isObject } }, { message });
}

function IsErrorLike(): PropertyDecorator {
  return ValidateBy(
    { name: 'isErrorLike', validator: { validate: isErrorLike } },
    { message: 'must be an Error or an object { name?, message, status_code? }' },
  );
}

class ResourceSchema {
  @IsString({ message: 'must be a string' })
  @MaxLength(MAX_NAME_LENGTH, { message: `must be at most ${MAX_NAME_LENGTH} characters` })
  @Matches(RESOURCE_TYPE_PATTERN, { message: "must be lower case, like 'document' or 'api_endpoint'" })
  type!: string;

  @IsResourceId()
  id!: string | number;
}

class ActorSchema {
  @IsString({ message: 'must be a string' })
  @Matches(/^.{1,512}$/s, { message: 'must be 1 to 512 characters' })
  id!: string;
}

class LogInputSchema {
  @IsString({ message: "must be a string like 'document.share'" })
  @MaxLength(MAX_NAME_LENGTH, { message: `must be at most ${MAX_NAME_LENGTH} characters` })
  @Matches(ACTION_PATTERN, { message: "must be lower case and dot-separated, like 'document.share'" })
  action!: string;

  @IsPlainObjectValue('must be an object { type, id }')
  resource!: unknown;

  @IsAbsentOr()
  @IsIn(['success', 'failure'], { message: "must be 'success' or 'failure'" })
  outcome?: string;

  @IsAbsentOr()
  @IsPlainObjectValue('must be an object')
  metadata?: unknown;

  @IsAbsentOr()
  @IsPlainObjectValue('must be an object { id, type?, email? }')
  actor?: unknown;

  @IsAbsentOr()
  @IsErrorLike()
  error?: unknown;
}

/**
 * Throws {@link AuditValidationError} listing every problem when `input`
 * breaks the event schema. The rules are class-validator schemas; a plain
 * check of the same rules runs first so that valid input (nearly all of it)
 * costs no reflection.
 */
export function assertValidLogInput(input: unknown): asserts input is AuditLogInput {
  if (isValidLogInput(input)) return;
  const issues = logInputIssues(input);
  if (issues.length > 0) throw new AuditValidationError(issues);
}

/** The class-validator verdict: one `field: problem` line per bad field. */
export function logInputIssues(input: unknown): string[] {
  if (!isObject(input)) return [`event: must be an object { action, resource, outcome?, metadata? }, got ${typeof input}`];
  const issues = collect(validateSync(Object.assign(new LogInputSchema(), input)));
  if (isObject(input.resource)) {
    issues.push(...collect(validateSync(Object.assign(new ResourceSchema(), input.resource)), 'resource.'));
  }
  if (isObject(input.actor)) {
    issues.push(...collect(validateSync(Object.assign(new ActorSchema(), input.actor)), 'actor.'));
  }
  return issues;
}

/** The same rules as the schemas above, without reflection. */
export function isValidLogInput(input: unknown): boolean {
  if (!isObject(input)) return false;
  const { action, resource, outcome, metadata, actor, error } = input;
  return (
    typeof action === 'string' &&
    isName(action, ACTION_PATTERN, validActions) &&
    isObject(resource) &&
    typeof resource.type === 'string' &&
    isName(resource.type, RESOURCE_TYPE_PATTERN, validResourceTypes) &&
    isResourceId(resource.id) &&
    (outcome === undefined || outcome === 'success' || outcome === 'failure') &&
    (metadata === undefined || isObject(metadata)) &&
    (actor === undefined ||
      (isObject(actor) && typeof actor.id === 'string' && actor.id.length >= 1 && actor.id.length <= 512)) &&
    (error === undefined || isErrorLike(error))
  );
}

// An app's actions and resource types are a small vocabulary, written as literals in its code: each one is
// matched by its pattern once and remembered, not matched again for every event. Bounded: a stream of
// ever-new names (generated ones) empties the memory and is matched as before.
const validActions = new Set<string>();
const validResourceTypes = new Set<string>();
const MAX_REMEMBERED_NAMES = 1024;

function isName(value: string, pattern: RegExp, valid: Set<string>): boolean {
  if (valid.has(value)) return true;
  if (value.length > MAX_NAME_LENGTH || !pattern.test(value)) return false;
  if (valid.size >= MAX_REMEMBERED_NAMES) valid.clear();
  valid.add(value);
  return true;
}

export function isResourceId(value: unknown): boolean {
  return (
    (typeof value === 'string' && value.length > 0 && value.length <= MAX_RESOURCE_ID_LENGTH) ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

function isObject(value: unknown): value is Record<string, any> {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return !Array.isArray(value);
  } catch {
    return true; // a revoked Proxy: an object all the same, and the snapshot marks what it cannot read
  }
}

function isErrorLike(value: unknown): boolean {
  return value instanceof Error || (isObject(value) && typeof value.message === 'string');
}

function collect(errors: ValidationError[], prefix = ''): string[] {
  return errors.flatMap((error) => {
    // The first rule broken in declaration order (class-validator lists them in reverse).
    const messages = Object.values(error.constraints ?? {});
    return messages.length > 0 ? [`${prefix}${error.property}: ${messages[messages.length - 1]}`] : [];
  });
}

/** The problems of an `@Audit()` declaration, checked when the class is defined. */
export function decoratorIssues(action: unknown, resourceType: unknown, options: unknown): string[] {
  const issues: string[] = [];
  if (typeof action !== 'string' || !isName(action, ACTION_PATTERN, validActions)) {
    issues.push(`action: must be lower case and dot-separated, like 'document.share', got ${JSON.stringify(action)}`);
  }
  if (typeof resourceType !== 'string' || !isName(resourceType, RESOURCE_TYPE_PATTERN, validResourceTypes)) {
    issues.push(`resourceType: must be lower case, like 'document', got ${JSON.stringify(resourceType)}`);
  }
  if (options !== undefined) {
    if (!isObject(options)) {
      issues.push('options: must be an object { resourceId?, metadata?, diff? }');
    } else {
      for (const key of ['resourceId', 'metadata'] as const) {
        if (options[key] !== undefined && typeof options[key] !== 'function') {
          issues.push(`options.${key}: must be a function of { args, result, error }`);
        }
      }
      const diff = options.diff;
      if (diff !== undefined && diff !== true && diff !== false) {
        if (!isObject(diff)) {
          issues.push('options.diff: must be true or an object { before?, after?, include?, exclude? }');
        } else {
          for (const key of ['before', 'after'] as const) {
            if (diff[key] !== undefined && typeof diff[key] !== 'function') {
              issues.push(`options.diff.${key}: must be a function (${key === 'before' ? '{ args, instance }' : '{ args, result }'}) => value`);
            }
          }
          issues.push(...diffOptionIssues(diff, 'options.diff.', ['before', 'after']));
        }
      }
    }
  }
  return issues;
}
