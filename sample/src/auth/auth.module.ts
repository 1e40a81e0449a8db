import { Global, Module } from '@nestjs/common';
import { AuthService } from './auth.service.js';

/** Global, so that guards created in other modules (the audit trail's routes) can check tokens. */
@Global()
@Module({ providers: [AuthService], exports: [AuthService] })
export class AuthModule {}
