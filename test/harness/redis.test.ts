/*
 * Proves the redis harness with the real node-redis client: PING, SET/GET, a frozen server
 * (pause) that times commands out, and a killed server that refuses until restarted on the
 * same port, empty.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createClient } from 'redis';

import { redisAnswersPing, startRedis, type RedisServer } from './redis';

describe('redis harness', () => {
  let redis: RedisServer;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('answers PING, SET and GET through node-redis on 127.0.0.1', async () => {
    assert.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
    const client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
    try {
      assert.equal(await client.ping(), 'PONG');
      await client.set('moat:harness', 'ok');
      assert.equal(await client.get('moat:harness'), 'ok');
    } finally {
      client.destroy();
    }
  });

  it('does not answer while paused and answers again after resume', async () => {
    redis.pause();
    await assert.rejects(redisAnswersPing(redis.port, 300), /no complete reply/);
    redis.resume();
    assert.equal(await redisAnswersPing(redis.port), true);
  });

  it('refuses after kill and starts again on the same port without the old data', async () => {
    await redis.kill();
    await assert.rejects(redisAnswersPing(redis.port, 300), /ECONNREFUSED/);
    await redis.start();
    const client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
    try {
      assert.equal(await client.get('moat:harness'), null);
    } finally {
      client.destroy();
    }
  });
});
