import { CanActivate, ExecutionContext, Injectable, SetMetadata, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthService } from './auth.service.js';

/** Bearer-token authentication: sets `request.user`, or answers 401. */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  constructor(private readonly auth: AuthService) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest();
    const header: string | undefined = request.headers.authorization;
    const user = header?.startsWith('Bearer ') ? this.auth.userForToken(header.slice(7)) : undefined;
    if (!user) throw new UnauthorizedException('Sign in first: send Authorization: Bearer <token>');
    request.user = user;
    return true;
  }
}

export const ROLES = 'sample:roles';
/** The roles a handler requires. */
export const Roles = (...roles: string[]) => SetMetadata(ROLES, roles);

/** Role check after authentication: false (so Nest answers 403) when a role is missing. */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndOverride<string[]>(ROLES, [context.getHandler(), context.getClass()]) ?? [];
    const roles: string[] = context.switchToHttp().getRequest().user?.roles ?? [];
    return required.every((role) => roles.includes(role));
  }
}

/** The audit trail is for admins and auditors: 403 for anyone else. */
@Injectable()
export class AuditorGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const roles: string[] = context.switchToHttp().getRequest().user?.roles ?? [];
    return roles.includes('admin') || roles.includes('auditor');
  }
}
