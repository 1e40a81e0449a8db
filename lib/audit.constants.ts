/** Metadata key of `@Audit()` on a method (and on the route handler Nest derives from it). */
export const AUDIT_METADATA = 'nestjs-audit:audit';
/** Metadata key of `@SkipAudit()`. */
export const SKIP_AUDIT_METADATA = 'nestjs-audit:skip';
/** Token of the validated options with defaults applied. */
export const AUDIT_RESOLVED_OPTIONS = Symbol.for('nestjs-audit:resolved-options');
