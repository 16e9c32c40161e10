// Build the phone web app into edge_agent/phone/web/static (committed; no build at install time).
//   cd tools/phone-web && npm ci && python3 gen_schema.py && npm run build
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";

const OUT = new URL("../../edge_agent/phone/web/static/", import.meta.url).pathname;
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });

await build({ entryPoints: ["src/app.js"], bundle: true, minify: true, format: "esm", target: "es2022",
  outfile: OUT + "app.js", legalComments: "eof", logLevel: "warning" });
await build({ entryPoints: ["src/app.css"], bundle: true, minify: true, outfile: OUT + "app.css", logLevel: "warning" });
// the enrolment AudioWorklet runs on the audio thread from a file of its own (same origin, script-src 'self')
await build({ entryPoints: ["src/capture-worklet.js"], bundle: false, minify: true, target: "es2022", outfile: OUT + "capture-worklet.js", logLevel: "warning" });
for (const f of ["index.html", "manifest.webmanifest", "icon-192.png", "icon-512.png", "icon-maskable-512.png"]) copyFileSync("src/" + f, OUT + f);

// the service worker's cache name changes whenever any asset does, so phones pick up a new build
const h = createHash("sha256");
for (const f of readdirSync(OUT).sort()) h.update(f).update(readFileSync(OUT + f));
writeFileSync(OUT + "sw.js", readFileSync("src/sw.js", "utf8").replace("__BUILD__", "edge-agent-" + h.digest("hex").slice(0, 16)));
