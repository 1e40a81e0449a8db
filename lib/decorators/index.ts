export { Audit } from './audit.decorator.js';
export { SkipAudit } from './skip-audit.decorator.js';
