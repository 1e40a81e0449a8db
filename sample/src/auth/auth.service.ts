import { Injectable, UnauthorizedException } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { USERS, type RequestUser } from './users.js';

@Injectable()
export class AuthService {
  private readonly sessions = new Map<string, RequestUser>();

  /** Checks the credentials and opens a session; throws 401 on a bad pair. */
  login(email: string, password: string): { token: string; user: RequestUser } {
    const user = USERS.find((candidate) => candidate.email === email);
    if (!user || user.password !== password) throw new UnauthorizedException('Invalid email or password');
    const token = randomBytes(24).toString('base64url');
    const sessionUser = { id: user.id, email: user.email, roles: [...user.roles] };
    this.sessions.set(token, sessionUser);
    return { token, user: sessionUser };
  }

  userForToken(token: string): RequestUser | undefined {
    return this.sessions.get(token);
  }

  addRole(userId: string, role: string): RequestUser[] {
    const updated = [...this.sessions.values()].filter((user) => user.id === userId);
    for (const user of updated) if (!user.roles.includes(role)) user.roles.push(role);
    const stored = USERS.find((user) => user.id === userId);
    if (stored && !stored.roles.includes(role)) stored.roles.push(role);
    return updated;
  }
}
