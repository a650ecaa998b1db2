// Preloaded into firebase-tools by tools/emulators.py (NODE_OPTIONS=--require): hands out each
// port at most once. The Functions emulator starts a Python worker per concurrent request, each
// on a port that portfinder finds free from a random base in 8081-9080; two workers started at
// once can be given the same port (portfinder checks it, the worker binds it later), and the
// second one then fails to start ("Address already in use"), failing its request. Seen in about
// one full test run in ten; this closes the race.
"use strict";
const path = require("path");

let portfinder = null;
try {
  portfinder = require(require.resolve("portfinder", {
    paths: [path.join(__dirname, "..", "node_modules", "firebase-tools")],
  }));
} catch {
  // not firebase-tools' node process, or no portfinder there: nothing to fix
}

if (portfinder) {
  const find = portfinder.getPortPromise;
  const given = new Set();
  portfinder.getPortPromise = async function distinctPort(options = {}) {
    let port = options.port ?? portfinder.basePort;
    for (;;) {
      const found = await find.call(portfinder, { ...options, port });
      if (!given.has(found)) {
        given.add(found); // checked and added in one turn of the event loop: no race
        return found;
      }
      port = found + 1;
    }
  };
}
