import {
  BadRequestException,
  Controller,
  ForbiddenException,
  Get,
  Module,
  Query,
  Req,
  StreamableFile,
  UseGuards,
  type CanActivate,
  type DynamicModule,
  type Type,
} from '@nestjs/common';
import { Readable } from 'node:stream';
import { AuditConfigurationError } from '../audit.errors.js';
import { Audit } from '../decorators/audit.decorator.js';
import { AuditQueryError } from './postgres.errors.js';
import { FILTERS as COLUMNS, validQuery } from './postgres.query.js';
import type { AuditSearchQuery, AuditSearchResult, PostgresAuditStore } from './postgres.store.js';

/** Options of {@link AuditTrailHttpModule}. @publicApi */
export interface AuditTrailHttpOptions {
  /** The store to serve. */
  store: PostgresAuditStore;
  /** Guards of both routes, e.g. your auth guard and an auditor-role guard. Required unless `public: true`. */
  guards?: (CanActivate | Type<CanActivate>)[];
  /** Serve the trail without a guard (say so explicitly, e.g. behind a private network). Default false. */
  public?: boolean;
  /** The caller's tenant: results are limited to it, and a request without one is refused (403). */
  tenant?: (request: any) => string | undefined;
  /** Where to mount: `<path>/events` and `<path>/events/export`. Default `audit`. */
  path?: string;
  /** Modules whose providers the guards inject (guard classes are created in this module). */
  imports?: NonNullable<DynamicModule['imports']>;
}

const FILTERS = [...COLUMNS, 'from', 'to'] as const;

/**
 * Mounts `GET /audit/events` (search) and `GET /audit/events/export`
 * (`?format=jsonl|csv`), guarded, tenant-scoped when a resolver is given, and
 * audited: every search and export is itself an event (`audit.search`,
 * `audit.export`), so who looked at the log is in the log.
 *
 * @publicApi
 */
@Module({})
export class AuditTrailHttpModule {
  static forRoot(options: AuditTrailHttpOptions): DynamicModule {
    const guards = options.guards ?? [];
    if (guards.length === 0 && options.public !== true) {
      throw new AuditConfigurationError([
        'guards: the audit trail HTTP surface needs a guard (your auth guard and a role check), ' +
          'or public: true to serve it to anyone who can reach it',
      ]);
    }
    const { store, tenant } = options;

    const scoped = (request: unknown, query: Record<string, unknown>): AuditSearchQuery => {
      const parsed = parseQuery(query);
      if (tenant) {
        const id = tenant(request);
        if (typeof id !== 'string' || id.length === 0) throw new ForbiddenException('No tenant for this request: the audit trail is served per tenant');
        if (parsed.tenant_id !== undefined && parsed.tenant_id !== id) throw new ForbiddenException('Another tenant\'s audit trail is not served');
        parsed.tenant_id = id;
      }
      return parsed;
    };

    @Controller(options.path ?? 'audit')
    class AuditTrailController {
      @Audit('audit.search', 'audit_trail', {
        resourceId: () => store.table,
        metadata: ({ args: [query], result }) => ({ query: query as Record<string, unknown>, returned: (result as AuditSearchResult | undefined)?.events.length }),
      })
      @Get('events')
      search(@Query() query: Record<string, unknown>, @Req() request: unknown): Promise<AuditSearchResult> {
        return store.search(scoped(request, query)).catch(badRequest);
      }

      @Audit('audit.export', 'audit_trail', {
        resourceId: () => store.table,
        metadata: ({ args: [query] }) => ({ query: query as Record<string, unknown> }),
      })
      @Get('events/export')
      export(@Query() query: Record<string, unknown>, @Req() request: unknown): StreamableFile {
        const { format = 'jsonl', ...rest } = query;
        if (format !== 'jsonl' && format !== 'csv') throw new BadRequestException("format: must be 'jsonl' or 'csv'");
        const { limit: _limit, cursor: _cursor, ...filters } = scoped(request, rest);
        let chunks: AsyncGenerator<string>;
        try {
          chunks = store.export(filters, format);
        } catch (error) {
          badRequest(error);
        }
        const body = Readable.from(chunks);
        return new StreamableFile(body, {
          type: format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
          disposition: `attachment; filename="audit-events.${format}"`,
        });
      }
    }
    if (guards.length > 0) UseGuards(...guards)(AuditTrailController);

    return { module: AuditTrailHttpModule, imports: options.imports ?? [], controllers: [AuditTrailController] };
  }
}

/** A store's AuditQueryError as the 400 it is; anything else as it was. */
function badRequest(error: unknown): never {
  throw error instanceof AuditQueryError ? new BadRequestException(error.issues) : error;
}

/**
 * Query-string filters as a search query, checked by the store's own rules
 * (one list of problems, every bad parameter named): anything wrong is a 400.
 */
function parseQuery(query: Record<string, unknown>): AuditSearchQuery {
  const issues: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(query)) {
    if (typeof value !== 'string') issues.push(`${key}: must be given once`);
    else if (key === 'limit') out.limit = /^\d{1,9}$/.test(value) ? Number(value) : value;
    else if ((FILTERS as readonly string[]).includes(key) || key === 'cursor') out[key] = value;
    else issues.push(`${key}: is not a filter (known: ${[...FILTERS, 'limit', 'cursor'].join(', ')})`);
  }
  try {
    validQuery(out, true, 'search');
  } catch (error) {
    if (!(error instanceof AuditQueryError)) throw error;
    issues.push(...error.issues);
  }
  if (issues.length > 0) throw new BadRequestException(issues);
  return out as AuditSearchQuery;
}
