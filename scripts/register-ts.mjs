// Lets `node --import ./scripts/register-ts.mjs file.ts` run the sample and benchmarks from source:
// TypeScript is compiled on the fly by swc (with decorator metadata, which Nest's DI needs).
import { register } from 'node:module';

register('./ts-loader.mjs', import.meta.url);
