export { AuditHealthIndicator, type AuditHealthOptions } from './audit.health.js';
