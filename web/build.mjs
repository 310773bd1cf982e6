// Builds web/dist, the pages the server embeds: generates the client from ../proto with buf,
// type-checks, bundles each page's TypeScript with esbuild and copies the pages beside it.
//   node build.mjs          rebuild web/dist
//   node build.mjs --check  rebuild into a temporary folder; fail when web/dist differs
//   node build.mjs --tests  also bundle the browser tests into web/.test-build (for node)
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const web = dirname(fileURLToPath(import.meta.url));
const bin = join(web, "node_modules", ".bin");
const check = process.argv.includes("--check");
const tests = process.argv.includes("--tests");
const run = (cmd, args) =>
  execFileSync(join(bin, cmd), args, {
    cwd: web,
    stdio: "inherit",
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  });

rmSync(join(web, "src", "gen"), { recursive: true, force: true });
run("buf", ["generate"]);
run("tsc", ["--noEmit", "-p", "."]);

const out = check ? mkdtempSync(join(tmpdir(), "switchboard-web-")) : join(web, "dist");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: { desktop: "src/desktop/main.ts", wallboard: "src/wallboard/main.ts" },
  absWorkingDir: web,
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outdir: out,
  legalComments: "none",
  logLevel: "warning",
});
cpSync(join(web, "pages"), out, { recursive: true });

if (tests) {
  run("tsc", ["--noEmit", "-p", "tests"]);
  const testOut = join(web, ".test-build");
  rmSync(testOut, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: readdirSync(join(web, "tests"))
      .filter((f) => f.endsWith(".test.ts"))
      .map((f) => join("tests", f)),
    absWorkingDir: web,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outdir: testOut,
    logLevel: "warning",
  });
}

if (check) {
  const committed = join(web, "dist");
  const names = (dir) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).sort() : []);
  const built = names(out);
  const differ = [...new Set([...built, ...names(committed)])].filter((name) => {
    const a = join(out, name);
    const b = join(committed, name);
    return !existsSync(a) || !existsSync(b) || !readFileSync(a).equals(readFileSync(b));
  });
  rmSync(out, { recursive: true, force: true });
  if (differ.length > 0) {
    console.error(`web/dist differs from a fresh build: ${differ.join(", ")}`);
    console.error("run `npm run build` in web/ and commit web/dist");
    process.exit(1);
  }
  console.log("web/dist matches a fresh build");
}
