/*
 * A small pool of idle SMTP connections to the downstream, so a busy gateway does not pay a TCP
 * and TLS handshake per message.
 *
 * Each connection carries one message at a time. Before it carries another it is RSET; one whose
 * RSET fails, which the server closed, or which said something unasked is dropped. At most
 * poolSize connections wait idle; each is closed (QUIT) after poolIdleMs idle or after
 * maxMessagesPerConnection messages. The number of connections in use is not capped here: it
 * follows the number of messages being delivered at once.
 *
 * LIMITATION: no cap on concurrent downstream connections; a downstream with a low connection
 * limit will answer 421 under load and those messages are deferred.
 */
import type { DownstreamConfig, HostPort } from '../config/types';
import { SmtpClient, type ClientConfig } from './smtp-client';
import type { DeliveryObserver } from './types';

export type PoolConfig = ClientConfig &
  Pick<DownstreamConfig, 'poolSize' | 'poolIdleMs' | 'maxMessagesPerConnection'>;

export interface Lease {
  client: SmtpClient;
  /** True when the connection had carried earlier work (it may have gone stale meanwhile). */
  reused: boolean;
}

interface IdleConnection {
  client: SmtpClient;
  timer: NodeJS.Timeout;
}

export class ConnectionPool {
  private idle: IdleConnection[] = [];
  private closing = false;
  private watched = new WeakSet<SmtpClient>();

  constructor(
    private readonly config: PoolConfig,
    private readonly address: HostPort,
    private readonly observe: DeliveryObserver,
  ) {}

  /**
   * An idle connection, else a new one. One whose last transaction was left open (refused
   * recipients, a refused DATA) is sent RSET first and dropped unless it answers 250; one whose
   * last message ended with the final dot needs no RSET, which saves a round trip per message.
   * A connection that died while parked fails our MAIL instead, and the forwarder retries that
   * once on a fresh connection (Forwarder.openTransaction).
   * Throws DownstreamError when a new connection cannot be opened.
   */
  async acquire(): Promise<Lease> {
    for (let parked = this.idle.pop(); parked; parked = this.idle.pop()) {
      clearTimeout(parked.timer);
      const client = parked.client;
      if (client.usable && (!client.needsReset || (await client.reset()))) {
        this.observe('reuse', 'ok', 0);
        return { client: parked.client, reused: true };
      }
      this.observe('reuse', 'stale', 0);
      parked.client.destroy();
    }
    return { client: await this.openFresh(), reused: false };
  }

  /** A brand-new connection, never a pooled one. Throws DownstreamError. */
  async openFresh(): Promise<SmtpClient> {
    const started = performance.now();
    try {
      const client = await SmtpClient.open(this.config, this.address);
      this.observe('connect', 'ok', (performance.now() - started) / 1000);
      return client;
    } catch (error) {
      this.observe('connect', 'error', (performance.now() - started) / 1000);
      throw error;
    }
  }

  /** Gives a connection back: parked for reuse if `reusable` and there is room, else closed. */
  release(client: SmtpClient, reusable: boolean): void {
    if (!reusable || !client.usable) return client.destroy();
    const worn = client.messagesSent >= this.config.maxMessagesPerConnection;
    if (this.closing || worn || this.idle.length >= this.config.poolSize) {
      void client.quit();
      return;
    }
    const timer = setTimeout(() => this.expire(client), this.config.poolIdleMs);
    timer.unref();
    this.idle.push({ client, timer });
    if (this.watched.has(client)) return;
    this.watched.add(client);
    client.onFailure(() => this.forget(client));
  }

  /** QUITs every idle connection. */
  async close(): Promise<void> {
    this.closing = true;
    const parked = this.idle;
    this.idle = [];
    await Promise.allSettled(parked.map(({ client, timer }) => {
      clearTimeout(timer);
      return client.quit();
    }));
  }

  /** Idle connections right now (for tests and metrics). */
  get idleCount(): number {
    return this.idle.length;
  }

  private expire(client: SmtpClient): void {
    this.forget(client);
    void client.quit();
  }

  private forget(client: SmtpClient): void {
    const index = this.idle.findIndex((parked) => parked.client === client);
    if (index === -1) return;
    const [parked] = this.idle.splice(index, 1);
    if (parked) clearTimeout(parked.timer);
  }
}
