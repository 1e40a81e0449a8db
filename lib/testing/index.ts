export { InMemoryAuditTransport, type AuditEventMatch } from './in-memory.transport.js';
