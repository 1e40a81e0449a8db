import { Injectable, Module } from '@nestjs/common';
import { Audit, AuditModule, AuditService, InMemoryPseudonymStore, auditDiff } from 'nestjs-audit';

export const pseudonyms = new InMemoryPseudonymStore(); // use a store over your own database in production

@Module({
  imports: [
    AuditModule.forRoot({
      redaction: {
        keys: ['employee_number'], // more secret key names (matched like the built-in ones)
        patterns: [/EMP-\d{6}/g], // more secret value shapes
        allowKeys: ['session'], // a key your app uses for something that is not a secret
      },
      limits: { maxMetadataBytes: 16 * 1024 },
      pseudonymize: {
        secret: process.env.AUDIT_PSEUDONYM_KEY ?? 'dev-only-pseudonym-key-change-me',
        keyId: 'k1',
        fields: ['actor.email', 'metadata.shared_with'],
        store: pseudonyms,
      },
    }),
  ],
})
export class AuditConfig {}

interface Profile {
  email: string;
  password: string;
  address: { city: string };
}

@Injectable()
export class ProfileService {
  constructor(private readonly audit: AuditService) {}

  // diff: true compares the first argument as it was before the call with the result.
  @Audit('profile.update', 'user', { resourceId: ({ result }) => result.email, diff: true })
  update(profile: Profile, changes: Partial<Profile>): Profile {
    return Object.assign(profile, changes);
  }

  login(email: string, password: string, ok: boolean): string {
    return this.audit.log({
      action: 'user.login',
      outcome: ok ? 'success' : 'failure',
      resource: { type: 'user', id: 'by-email' },
      // Never the password: a derived fact about it. A `password` key would be redacted anyway.
      metadata: { password_length: password.length, shared_with: email, diff: auditDiff({ plan: 'free' }, { plan: 'pro' }) },
    });
  }
}
