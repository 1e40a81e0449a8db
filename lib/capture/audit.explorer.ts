import { Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { AuditRecorder } from '../event/audit.recorder.js';
import {
  activateApp,
  bindClass,
  bindInstance,
  deactivateApp,
  isAuditedClass,
  unbindClass,
  type AuditApp,
} from './audit.routing.js';

/**
 * Binds the objects of this app that have `@Audit()` methods to this app, so
 * that calls outside any request (bootstrap, cron, queue consumers) reach
 * this app's transport and no other, even with several apps in one process.
 */
@Injectable()
export class AuditExplorer implements OnModuleInit, OnApplicationShutdown {
  private readonly app: AuditApp;
  private readonly boundClasses = new Set<Function>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly recorder: AuditRecorder,
  ) {
    // Active from creation: a module that is compiled but never initialised (a unit test) still routes.
    this.app = { target: recorder, owns: (instance) => this.owns(instance) };
    activateApp(this.app);
  }

  onModuleInit(): void {
    this.bindAll();
  }

  onApplicationShutdown(): void {
    deactivateApp(this.app);
    for (const cls of this.boundClasses) unbindClass(cls, this.recorder);
    this.boundClasses.clear();
  }

  /** Whether `instance` was created by this app (for objects met before `onModuleInit`). */
  owns(instance: object): boolean {
    return this.bindAll(instance);
  }

  private bindAll(wanted?: object): boolean {
    let found = false;
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance = wrapper.instance as object | undefined;
      const cls = (instance?.constructor ?? wrapper.metatype) as Function | undefined;
      if (!isAuditedClass(cls)) continue;
      bindClass(cls, this.recorder);
      this.boundClasses.add(cls);
      if (wrapper.isDependencyTreeStatic() && !wrapper.isTransient && instance) {
        bindInstance(instance, this.recorder);
        found ||= instance === wanted;
      }
      if (wrapper.isTransient) {
        for (const host of wrapper.getStaticTransientInstances?.() ?? []) {
          if (host?.instance) {
            bindInstance(host.instance as object, this.recorder);
            found ||= host.instance === wanted;
          }
        }
      }
    }
    return found;
  }
}
