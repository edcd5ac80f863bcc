/*
 * The counter stores against the real thing: the same behaviour suite runs on the in-process
 * store, a real redis-server and a real three-master Redis Cluster. Then what only Redis can
 * do wrong: exact counts with many concurrent callers on two clients, keys that expire on their
 * own, a frozen server (the deadline is honoured) and a killed one (errors, then reconnects).
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { createClient } from 'redis';

import { startRedisCluster, type RedisCluster } from '../../test/harness/redis-cluster';
import { startRedis, type RedisServer } from '../../test/harness/redis';
import { MemoryCounterStore } from './memory-store';
import { RedisCounterStore } from './redis-store';
import { CounterStoreError, type CounterCheck, type CounterStore } from './store';

let unique = 0;
const fresh = (name: string): string => `moat:rl:{t:${name}:${process.pid}:${++unique}}:test`;

const windowCheck = (key: string, maximum: number, periodMs: number): CounterCheck =>
  ({ key, counting: 'window', maximum, periodMs });
const concurrentCheck = (key: string, maximum: number, periodMs: number): CounterCheck =>
  ({ key, counting: 'concurrent', maximum, periodMs });

function redisStore(url: string, cluster: boolean, timeoutMs = 2000): RedisCounterStore {
  return new RedisCounterStore({ url, cluster, timeoutMs, onClientError: () => undefined });
}

/** The behaviour every store must have; `make` gives a connected store. */
function storeSuite(name: string, make: () => CounterStore): void {
  describe(`${name}: counting`, () => {
    test('a window admits exactly its maximum, then refuses with a retry time', async () => {
      const store = make();
      const key = fresh('window');
      const allowed: boolean[] = [];
      for (let index = 0; index < 5; index++) {
        allowed.push((await store.take([windowCheck(key, 3, 1500)], `e${index}`)).allowed);
      }
      assert.deepEqual(allowed, [true, true, true, false, false]);
      const refused = await store.take([windowCheck(key, 3, 1500)], 'e9');
      assert.equal(refused.refusedIndex, 0);
      assert.equal(refused.counts.at(-1), 3);
      assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 1500,
        `retry after ${refused.retryAfterMs}`);
    });

    test('the window slides: room again once the oldest entries have aged out', async () => {
      const store = make();
      const key = fresh('slide');
      assert.equal((await store.take([windowCheck(key, 2, 600)], 'a')).allowed, true);
      assert.equal((await store.take([windowCheck(key, 2, 600)], 'b')).allowed, true);
      assert.equal((await store.take([windowCheck(key, 2, 600)], 'c')).allowed, false);
      await sleep(700);
      assert.equal((await store.take([windowCheck(key, 2, 600)], 'd')).allowed, true);
    });

    test('all checks of one call are counted, or none when one is full', async () => {
      const store = make();
      const tag = `atomic:${++unique}`;
      const small = `moat:rl:{${tag}}:small`;
      const large = `moat:rl:{${tag}}:large`;
      const both = [windowCheck(large, 10, 5000), windowCheck(small, 1, 5000)];
      assert.equal((await store.take(both, 'first')).allowed, true);
      const second = await store.take(both, 'second');
      assert.equal(second.allowed, false);
      assert.equal(second.refusedIndex, 1);
      // The large window was not touched by the refused call: 1 entry, so 9 more fit.
      const counts = await store.take([windowCheck(large, 10, 5000)], 'third');
      assert.deepEqual(counts.counts, [1]);
    });

    test('a concurrent entry holds until released, or until its lease runs out', async () => {
      const store = make();
      const key = fresh('concurrent');
      assert.equal((await store.take([concurrentCheck(key, 2, 800)], 'conn-1')).allowed, true);
      assert.equal((await store.take([concurrentCheck(key, 2, 800)], 'conn-2')).allowed, true);
      assert.equal((await store.take([concurrentCheck(key, 2, 800)], 'conn-3')).allowed, false);
      await store.release(key, 'conn-1');
      assert.equal((await store.take([concurrentCheck(key, 2, 800)], 'conn-3')).allowed, true);

      // conn-2 is renewed, conn-3 is not (its node "died"): only conn-3's lease runs out.
      await sleep(500);
      await store.renew(key, 'conn-2', 800);
      await sleep(450);
      const after = await store.take([concurrentCheck(key, 2, 800)], 'conn-4');
      assert.equal(after.allowed, true);
      assert.deepEqual(after.counts, [1]);
    });
  });
}

storeSuite('memory store', () => new MemoryCounterStore());

describe('redis store, one server', () => {
  let redis: RedisServer;
  const stores: RedisCounterStore[] = [];
  const make = (timeoutMs = 2000): RedisCounterStore => {
    const store = redisStore(redis.url, false, timeoutMs);
    stores.push(store);
    return store;
  };

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const store of stores) await store.close();
    await redis?.stop();
  });

  describe('behaviour', () => {
    let shared: RedisCounterStore;
    before(async () => {
      shared = make();
      await shared.connect(5000);
    });
    storeSuite('redis', () => shared);
  });

  test('two clients, 120 concurrent takes on a limit of 20: exactly 20 pass', async () => {
    const [one, two] = [make(), make()];
    await Promise.all([one.connect(5000), two.connect(5000)]);
    const key = fresh('exact');
    const results = await Promise.all(Array.from({ length: 120 }, (_unused, index) =>
      (index % 2 ? one : two).take([windowCheck(key, 20, 60_000)], `m${index}`)));
    assert.equal(results.filter((result) => result.allowed).length, 20);
  });

  test('keys carry an expiry: the window, or the lease', async () => {
    const store = make();
    await store.connect(5000);
    const windowKey = fresh('ttl-window');
    const leaseKey = fresh('ttl-lease');
    await store.take([windowCheck(windowKey, 5, 30_000)], 'a');
    await store.take([concurrentCheck(leaseKey, 5, 10_000)], 'b');
    const client = createClient({ url: redis.url });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const windowTtl = await client.pTTL(windowKey);
      const leaseTtl = await client.pTTL(leaseKey);
      assert.ok(windowTtl > 25_000 && windowTtl <= 30_000, `window ttl ${windowTtl}`);
      assert.ok(leaseTtl > 5_000 && leaseTtl <= 10_000, `lease ttl ${leaseTtl}`);
    } finally {
      client.destroy();
    }
  });

  test('a frozen server: take gives up at the deadline, and works again after', async () => {
    const store = make(100);
    await store.connect(5000);
    const key = fresh('frozen');
    redis.pause();
    try {
      await assert.rejects(store.take([windowCheck(key, 5, 5000)], 'x'),
        (error: unknown) => error instanceof CounterStoreError && /no answer within 100 ms/
          .test(error.message));
    } finally {
      redis.resume();
    }
    const afterwards = await retry(() => store.take([windowCheck(fresh('thawed'), 5, 5000)], 'y'));
    assert.equal(afterwards.allowed, true);
  });

  test('a killed server: take fails fast, then the client reconnects by itself', async () => {
    const store = make(200);
    await store.connect(5000);
    await redis.kill();
    try {
      await assert.rejects(store.take([windowCheck(fresh('down'), 5, 5000)], 'x'),
        CounterStoreError);
    } finally {
      await redis.start();
    }
    const afterwards = await retry(() => store.take([windowCheck(fresh('back'), 5, 5000)], 'y'));
    assert.equal(afterwards.allowed, true);
  });

  test('down at start-up: connect() gives up without throwing, and connects once it is up',
    async () => {
      await redis.kill();
      const errors: string[] = [];
      const store = new RedisCounterStore({ url: redis.url, cluster: false, timeoutMs: 200,
        onClientError: (error) => errors.push(error.message) });
      stores.push(store);
      try {
        await store.connect(300);
        await assert.rejects(store.take([windowCheck(fresh('early'), 5, 5000)], 'x'),
          CounterStoreError);
      } finally {
        await redis.start();
      }
      const afterwards = await retry(() => store.take([windowCheck(fresh('up'), 5, 5000)], 'y'));
      assert.equal(afterwards.allowed, true);
      assert.ok(errors.some((message) => /ECONNREFUSED/.test(message)), errors.join('; '));
    });
});

describe('redis store, three-master cluster', () => {
  let cluster: RedisCluster;
  let store: RedisCounterStore;

  before(async () => {
    cluster = await startRedisCluster();
    store = redisStore(cluster.url, true);
    await store.connect(5000);
  });
  after(async () => {
    await store?.close();
    await cluster?.stop();
  });

  storeSuite('redis cluster', () => store);

  test('groups follow the hash tag; keys of many tags land on all three masters', async () => {
    assert.equal(store.groupOf('moat:rl:{ip:192.0.2.1}:a'), 'ip:192.0.2.1');
    const key = (index: number): string => `moat:rl:{spread:${index}}:k`;
    for (let index = 0; index < 30; index++) {
      await store.take([windowCheck(key(index), 5, 30_000)], 'a');
    }
    const perNode = await Promise.all(cluster.nodes.map(async (node) => {
      const client = createClient({ url: `redis://${node.host}:${node.port}` });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return await client.dbSize();
      } finally {
        client.destroy();
      }
    }));
    assert.ok(perNode.every((count) => count > 0), `keys per master: ${perNode.join(', ')}`);
  });

  test('two clients, 120 concurrent takes on a limit of 20: exactly 20 pass', async () => {
    const other = redisStore(cluster.url, true);
    await other.connect(5000);
    try {
      const key = fresh('cluster-exact');
      const results = await Promise.all(Array.from({ length: 120 }, (_unused, index) =>
        (index % 2 ? store : other).take([windowCheck(key, 20, 60_000)], `m${index}`)));
      assert.equal(results.filter((result) => result.allowed).length, 20);
    } finally {
      await other.close();
    }
  });
});

/** Calls `attempt` until it resolves (the client is reconnecting), for up to 10 s. */
async function retry<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}
