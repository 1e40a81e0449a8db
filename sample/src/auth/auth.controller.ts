import { Body, Controller, HttpCode, Post, Req } from '@nestjs/common';
import { IsEmail, IsString, MinLength } from 'class-validator';
import { Audit } from 'nestjs-audit';
import { AuthService } from './auth.service.js';

export class LoginDto {
  @IsEmail()
  email!: string;

  @IsString()
  @MinLength(1)
  password!: string;
}

@Controller('auth')
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  /**
   * Success and failure are both `user.login`. The resource is the account
   * signed into; on success the handler sets `request.user`, so the event's
   * actor is the user who just signed in (a failed attempt stays anonymous).
   * The address tried is recorded pseudonymised (see the app module), and
   * never the password: only a derived fact about it.
   */
  @Audit('user.login', 'user', {
    resourceId: ({ result }) => result?.user.id,
    metadata: ({ args: [, body] }) => ({
      attempted_email: (body as LoginDto | undefined)?.email,
      password_length: (body as LoginDto | undefined)?.password?.length ?? 0,
    }),
  })
  @Post('login')
  @HttpCode(200)
  login(@Req() request: { user?: unknown }, @Body() body: LoginDto) {
    const session = this.auth.login(body.email, body.password);
    request.user = session.user;
    return { token: session.token, user: session.user };
  }
}
