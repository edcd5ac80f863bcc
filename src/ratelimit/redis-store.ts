/*
 * The counter store in Redis or Redis Cluster, with node-redis.
 *
 * Each take() is one Lua script call (EVALSHA, falling back to EVAL once per server after a
 * restart): it reads the server's clock, drops aged-out entries of every key it was given, and
 * either adds the event to all of them or to none. Keys expire on their own (PEXPIRE to the
 * window or lease). In a cluster all keys of one call must hash to one slot; the limiter groups
 * them by their hash tag (groupOf) and makes one call per group.
 *
 * Down or slow: every operation races a deadline (ratelimit.redis_timeout) and rejects with a
 * CounterStoreError when it passes; the caller lets the mail through. Commands are not queued
 * while disconnected (they fail at once), and the client reconnects by itself with a growing
 * pause.
 *
 * LIMITATION: a command already written to a server that then hangs still runs when the server
 * wakes up, after the mail was let through. It counts an event that did happen, so the count
 * stays true to the traffic, but it lands late and may refuse a later event a little early.
 */

import { createClient, createCluster, defineScript } from 'redis';
import type { CommandParser } from '@redis/client/dist/lib/client/parser';
import { CounterStoreError, type CounterCheck, type CounterStore, type TakeResult } from './store';

/*
 * KEYS: one per check. ARGV[1]: the entry id; then per check: kind (w = window, c =
 * concurrent), maximum, period in ms. Returns {1, 0, count...} or {0, index, count, retry_ms}.
 */
const TAKE_LUA = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local counts = {}
for i = 1, #KEYS do
  local kind = ARGV[i * 3 - 1]
  local maximum = tonumber(ARGV[i * 3])
  local period = tonumber(ARGV[i * 3 + 1])
  local floor = now
  if kind == 'w' then floor = now - period end
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', floor)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= maximum then
    local retry = 0
    if kind == 'w' then
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      if oldest[2] then retry = tonumber(oldest[2]) + period - now end
    end
    return {0, i, count, retry}
  end
  counts[i] = count
end
for i = 1, #KEYS do
  local period = tonumber(ARGV[i * 3 + 1])
  local score = now
  if ARGV[i * 3 - 1] == 'c' then score = now + period end
  redis.call('ZADD', KEYS[i], score, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], period)
end
local reply = {1, 0}
for i = 1, #counts do reply[i + 2] = counts[i] end
return reply
`;

/* KEYS[1]: a concurrent key. ARGV: entry id, lease in ms. */
const RENEW_LUA = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

const SCRIPTS = {
  moatTake: defineScript({
    SCRIPT: TAKE_LUA,
    parseCommand(parser: CommandParser, checks: CounterCheck[], member: string) {
      parser.pushKeysLength(checks.map((check) => check.key));
      parser.push(member);
      for (const check of checks) {
        parser.push(check.counting === 'window' ? 'w' : 'c', String(check.maximum),
          String(check.periodMs));
      }
    },
    transformReply: (reply: unknown) => reply as number[],
  }),
  moatRenew: defineScript({
    SCRIPT: RENEW_LUA,
    NUMBER_OF_KEYS: 1,
    parseCommand(parser: CommandParser, key: string, member: string, leaseMs: number) {
      parser.pushKey(key);
      parser.push(member, String(leaseMs));
    },
    transformReply: (reply: unknown) => reply as number,
  }),
};

export interface RedisStoreOptions {
  url: string;
  cluster: boolean;
  /** Deadline of every operation. */
  timeoutMs: number;
  /** Socket and reconnect errors (the client reconnects by itself). */
  onClientError: (error: Error) => void;
}

/** The few calls this store makes, the same for a single server and a cluster. */
interface ScriptClient {
  moatTake(checks: CounterCheck[], member: string): Promise<number[]>;
  moatRenew(key: string, member: string, leaseMs: number): Promise<number>;
  zRem(key: string, member: string): Promise<number>;
  connect(): Promise<unknown>;
  destroy(): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export class RedisCounterStore implements CounterStore {
  readonly kind: string;
  private readonly client: ScriptClient;
  private connecting: Promise<void> | null = null;

  constructor(private readonly options: RedisStoreOptions) {
    this.kind = options.cluster ? 'redis-cluster' : 'redis';
    const clientOptions = {
      disableOfflineQueue: true,
      commandsQueueMaxLength: 10_000,
      socket: {
        connectTimeout: 2000,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 6), 2000),
      },
    };
    this.client = (options.cluster
      ? createCluster({ rootNodes: [{ url: options.url }], defaults: clientOptions,
        scripts: SCRIPTS })
      : createClient({ url: options.url, ...clientOptions, scripts: SCRIPTS })
    ) as unknown as ScriptClient;

    // Without a listener, a dropped server would throw and kill the worker.
    this.client.on('error', (error) => options.onClientError(error));
  }

  /** Starts connecting; resolves once connected or when waitMs passes, never rejects. */
  async connect(waitMs: number): Promise<void> {
    this.connecting ??= this.client.connect().then(() => undefined, (error: unknown) => {
      this.options.onClientError(error instanceof Error ? error : new Error(String(error)));
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.connecting,
      new Promise<void>((resolve) => { timer = setTimeout(resolve, waitMs); }),
    ]);
    clearTimeout(timer);
  }

  /** `moat:rl:{ip:192.0.2.1}:...` → `ip:192.0.2.1` in a cluster; one group otherwise. */
  groupOf(key: string): string {
    if (!this.options.cluster) return '';
    const tag = /\{([^}]+)\}/.exec(key);
    return tag?.[1] ?? key;
  }

  async take(checks: CounterCheck[], member: string): Promise<TakeResult> {
    const keys = checks.map((check) => check.key);
    const reply = await this.deadline('take', keys, () => this.client.moatTake(checks, member));
    const [allowed, refused, ...rest] = reply.map(Number);
    if (allowed === 1) {
      return { allowed: true, refusedIndex: -1, counts: rest, retryAfterMs: 0 };
    }
    const index = (refused ?? 1) - 1;
    return { allowed: false, refusedIndex: index, counts: [...Array(index).fill(0), rest[0] ?? 0],
      retryAfterMs: Math.max(0, rest[1] ?? 0) };
  }

  async renew(key: string, member: string, leaseMs: number): Promise<void> {
    await this.deadline('renew', [key], () => this.client.moatRenew(key, member, leaseMs));
  }

  async release(key: string, member: string): Promise<void> {
    await this.deadline('release', [key], () => this.client.zRem(key, member));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private async deadline<T>(operation: string, keys: string[], call: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new CounterStoreError(this.kind, operation, keys,
        `no answer within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
    });
    try {
      return await Promise.race([call(), timeout]);
    } catch (error) {
      if (error instanceof CounterStoreError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new CounterStoreError(this.kind, operation, keys, message, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}
