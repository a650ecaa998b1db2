// Preloaded into firebase-tools (NODE_OPTIONS=--require, see firetasks.emulator_fixes: shipped in
// the firetasks wheel, `firetasks emulators-preload` prints its path). Two races of the Functions
// emulator with its Python workers, each of which failed a worker's request (and so lost a trigger
// event) in about one full test run in five:
//
// 1. Ports. The emulator starts a Python worker per concurrent request, each on a port that
//    portfinder finds free from a random base in 8081-9080. Two workers started at once can be
//    given the same port (portfinder checks it, the worker binds it later); the second then
//    fails to start ("Address already in use"). Here each port is handed out at most once.
// 2. Keep-alive. Node (19 and later) keeps the connection to a worker open for the next request,
//    for up to 5 s; the worker's gunicorn closes an idle connection after 2 s. A request sent on
//    a connection as gunicorn closes it fails ("socket hang up"). Here connections are not
//    reused: one connection per request, as the emulator did before Node 19.
"use strict";
const fs = require("fs");
const http = require("http");

http.globalAgent = new http.Agent({ keepAlive: false });

// The portfinder that firebase-tools itself loads: resolved from the script node runs (the
// `firebase` command: a link to firebase-tools' lib/bin/firebase.js, wherever it is installed).
let portfinder = null;
try {
  portfinder = require(require.resolve("portfinder", {
    paths: [fs.realpathSync(process.argv[1])],
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
