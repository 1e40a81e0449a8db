// `npm run bench` runs every benchmark; `npm run bench -- --quick` a short smoke that never fails on a timing.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const quick = process.argv.includes('--quick');
// The store benchmark measures the built package (dist/), as users run it.
execFileSync('npm', ['run', 'build'], { stdio: ['ignore', 'ignore', 'inherit'] });
const files = readdirSync(new URL('.', import.meta.url)).filter((f) => f.endsWith('.bench.ts')).sort();
for (const file of files) {
  execFileSync(
    process.execPath,
    ['--expose-gc', '--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', `bench/${file}`, ...(quick ? ['--quick'] : [])],
    { stdio: 'inherit' },
  );
}
