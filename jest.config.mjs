/** Jest in native ESM mode: loads NestJS 11 (CommonJS) and NestJS 12 (ESM only) alike. */
const swc = [
  '@swc/jest',
  {
    jsc: {
      target: 'es2022',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
    },
    module: { type: 'es6' },
  },
];

export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: {
    '^nestjs-audit$': '<rootDir>/lib/index.ts',
    '^nestjs-audit/testing$': '<rootDir>/lib/testing/index.ts',
    '^nestjs-audit/terminus$': '<rootDir>/lib/terminus/index.ts',
    '^nestjs-audit/postgres$': '<rootDir>/lib/postgres/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['<rootDir>/lib/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts', '<rootDir>/test/**/*.e2e-spec.ts', '<rootDir>/sample/**/*.e2e-spec.ts'],
  testTimeout: 20000,
};
