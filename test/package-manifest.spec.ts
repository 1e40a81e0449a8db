import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

function packageOf(specifier: string): string {
  return specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
}

describe('package manifest', () => {
  const files = sources(join(root, 'lib'));
  const imports = files.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s*'([^']+)'|(?:^|\n)\s*import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g)].map(
      (m) => ({ file, specifier: m[1] ?? m[2] ?? m[3] }),
    ),
  );

  it('declares every package the library imports, as a peer or a dependency', () => {
    const declared = new Set([...Object.keys(pkg.peerDependencies ?? {}), ...Object.keys(pkg.dependencies ?? {})]);
    const missing = imports
      .filter(({ specifier }) => !specifier.startsWith('.') && !specifier.startsWith('node:') && !builtinModules.includes(specifier))
      .filter(({ specifier }) => !declared.has(packageOf(specifier)))
      .map(({ file, specifier }) => `${file}: ${specifier}`);
    expect(missing).toEqual([]);
  });

  it('keeps the core free of anything but the peers and class-validator', () => {
    expect(Object.keys(pkg.dependencies)).toEqual(['class-validator']);
    const required = Object.keys(pkg.peerDependencies).filter((name) => !pkg.peerDependenciesMeta?.[name]?.optional);
    expect(required.sort()).toEqual(['@nestjs/common', '@nestjs/core', 'reflect-metadata', 'rxjs']);
    expect(pkg.peerDependencies['@nestjs/common']).toBe('^11.0.0 || ^12.0.0');
  });

  it('keeps optional peers out of the core entry: each is imported only by its own entry point', () => {
    const users = (name: string) => [...new Set(imports.filter(({ specifier }) => specifier === name).map(({ file }) => file.replace(/.*\/lib\//, 'lib/')))];
    expect(users('@nestjs/terminus')).toEqual(['lib/terminus/audit.health.ts']);
    for (const name of ['pg', '@electric-sql/pglite']) {
      expect(pkg.peerDependenciesMeta[name]).toEqual({ optional: true });
      expect(users(name).every((file) => file.startsWith('lib/postgres/'))).toBe(true);
    }
    const postgresSources = readFileSync(join(root, 'lib/postgres/postgres.connection.ts'), 'utf8');
    expect(postgresSources).toMatch(/importOptional<[^>]*>\('pg'\)/);
  });

  it('imports @nestjs packages from their root only, and relative files with .js', () => {
    const deep = imports.filter(({ specifier }) => /^@nestjs\/[^/]+\/./.test(specifier));
    expect(deep).toEqual([]);
    const bare = imports.filter(({ specifier }) => specifier.startsWith('.') && !specifier.endsWith('.js'));
    expect(bare).toEqual([]);
  });

  it('exports each entry point with types, import and require, types first', () => {
    for (const entry of ['.', './testing', './terminus', './postgres']) {
      const spec = pkg.exports[entry];
      for (const condition of ['import', 'require']) {
        expect(Object.keys(spec[condition])).toEqual(['types', 'default']);
        const build = condition === 'import' ? 'esm' : 'cjs';
        expect(spec[condition].default).toMatch(new RegExp(`^\\./dist/${build}/`));
      }
    }
    expect(pkg.exports['./package.json']).toBe('./package.json');
    expect(pkg.files).toContain('dist');
  });
});
