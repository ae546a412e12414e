// Builds the served page into service/playground/static/: index.html, one JavaScript
// bundle, one stylesheet and KaTeX's fonts. `npm ci && npm run build` from playground/.
// build-info.json records a digest of the sources, so a test without Node.js can tell
// whether the committed build is older than them (tests/service/test_playground.py).

import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '../service/playground/static');

// KaTeX lists woff2, woff and ttf for every font; every browser that runs this page reads
// woff2, so the other two are neither shipped nor named.
const woff2Only = {
  name: 'katex-woff2-only',
  setup(build) {
    build.onLoad({ filter: /katex\.min\.css$/ }, async (args) => {
      const css = await readFile(args.path, 'utf8');
      const contents = css.replace(/,url\([^)]*\.woff\) format\("woff"\),url\([^)]*\.ttf\) format\("truetype"\)/g, '');
      return { contents, loader: 'css', resolveDir: path.dirname(args.path) };
    });
  },
};

/** The files the build reads, as paths relative to playground/, sorted. */
async function sources() {
  const files = ['build.mjs', 'package-lock.json', 'package.json'];
  for (const entry of await readdir(path.join(here, 'src'), { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.push(path.relative(here, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
  }
  return files.sort();
}

/** sha256 over "<path>\n<sha256 of its bytes>\n" for every source, in order. */
async function sourcesDigest() {
  const digest = createHash('sha256');
  for (const file of await sources()) {
    const bytes = await readFile(path.join(here, file));
    digest.update(`${file}\n${createHash('sha256').update(bytes).digest('hex')}\n`);
  }
  return digest.digest('hex');
}

await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, 'assets'), { recursive: true });
await esbuild.build({
  entryPoints: { playground: path.join(here, 'src/main.js') },
  outdir: path.join(out, 'assets'),
  bundle: true,
  format: 'esm',
  target: ['chrome120', 'firefox120', 'safari17'],
  minify: true,
  legalComments: 'eof',
  loader: { '.woff2': 'file' },
  assetNames: 'fonts/[name]',
  plugins: [woff2Only],
  logLevel: 'warning',
});
await copyFile(path.join(here, 'src/index.html'), path.join(out, 'index.html'));
const info = { sources_sha256: await sourcesDigest(), esbuild: esbuild.version };
await writeFile(path.join(out, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
console.log(`built ${path.relative(process.cwd(), out)} (sources ${info.sources_sha256.slice(0, 12)})`);
