// The web client's build: three bundles (join, demo, analytics) and their static files into dist/.
// Run by scripts/bootstrap after `npm ci`; the control plane serves dist/ (PODIUM_WEB_DIST).
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";

const dist = new URL("./dist/", import.meta.url);
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

await build({
  entryPoints: { join: "src/join.ts", demo: "src/demo.ts", analytics: "src/analytics.ts" },
  outdir: "dist",
  bundle: true,
  format: "esm",
  target: ["es2022", "chrome100", "safari15", "firefox100"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
});
for (const file of ["join.html", "demo.html", "analytics.html", "styles.css", "analytics.css"]) {
  cpSync(new URL(`./src/${file}`, import.meta.url), new URL(file, dist));
}
