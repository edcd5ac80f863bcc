/*
 * A free TCP port on loopback, for daemons Moat starts itself (the quickstart's clamd and
 * spamd) and for the tests' daemons.
 *
 * The OS is asked for port 0 and the probe is closed again. It may give the same port twice
 * in a row once the probe is closed, so ports this process handed out are never handed out
 * again. Another process could still take a port between the close and the daemon's bind; the
 * daemon then fails to bind and says so.
 */

import { createServer, type AddressInfo } from 'node:net';

const handedOut = new Set<number>();

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const port = await probePort(host);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

function probePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
