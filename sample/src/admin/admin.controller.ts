import { Body, Controller, Param, Post, UseGuards } from '@nestjs/common';
import { IsIn } from 'class-validator';
import { Audit } from 'nestjs-audit';
import { BearerAuthGuard, Roles, RolesGuard } from '../auth/auth.guards.js';
import { AuthService } from '../auth/auth.service.js';

export class AssignRoleDto {
  @IsIn(['editor', 'auditor', 'admin'])
  role!: string;
}

@Controller('admin')
@UseGuards(BearerAuthGuard, RolesGuard)
@Roles('admin')
export class AdminController {
  constructor(private readonly auth: AuthService) {}

  /** Admin only: a non-admin gets 403 from RolesGuard, and the denial is recorded as `user.role_assign`. */
  @Audit('user.role_assign', 'user', {
    resourceId: ({ args: [id] }) => id as string,
    metadata: ({ args: [, dto] }) => ({ role: (dto as AssignRoleDto | undefined)?.role }),
  })
  @Post('users/:id/roles')
  assignRole(@Param('id') id: string, @Body() dto: AssignRoleDto) {
    this.auth.addRole(id, dto.role);
    return { id, role: dto.role };
  }
}
