// Bundles web/customer.js (and the firebase package it imports) into the customer page's script:
// `node web/build.mjs [outfile]` (`make web`, `npm run build`). The bundle is checked in, so a
// clone deploys without building; tests/unit/test_customer_bundle.py checks it matches the source.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const outfile = process.argv[2] ?? `${root}functions/firetasks/customer_static/customer.js`;

await build({
  entryPoints: [`${root}web/customer.js`],
  outfile,
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  platform: "browser",
  legalComments: "eof",
  logLevel: "warning",
  absWorkingDir: root,
});
