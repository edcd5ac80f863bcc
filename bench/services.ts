/*
 * Everything the benchmark runs besides Moat, all on loopback and all from the test harness:
 * the DNS server with the corpus's records, Redis, clamd (with its clean-result cache off, so a
 * repeated message is scanned again), spamd, and the sink standing in for the internal server.
 *
 * Started once per benchmark and kept for all its runs, so every run meets warm scanners.
 */

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

import { startClamd, type ClamdServer } from '../test/harness/clamd';
import { startDns, type DnsServer } from '../test/harness/dns';
import { startRedis, type RedisServer } from '../test/harness/redis';
import { startSpamd, type SpamdServer } from '../test/harness/spamd';
import type { DnsEntry } from './corpus';
import { parentOf } from './proc';
import { startSink, type Sink } from './sink';

export interface Services {
  dns: DnsServer;
  redis: RedisServer;
  clamd: ClamdServer;
  spamd: SpamdServer;
  sink: Sink;
  /** Pids of the daemons, for CPU and memory (found by listening port). */
  pids: { clamd: number; spamd: number; redis: number; sink: number };
  stop(): Promise<void>;
}

export async function startServices(records: DnsEntry[], scanners = true): Promise<Services> {
  const dns = await startDns();
  for (const record of records) dns.add(record.name, record.type, record.data, 3600);
  const [redis, sink, clamd, spamd] = await Promise.all([
    startRedis(),
    startSink(),
    // The benchmark's messages repeat: clamd's cache of clean hashes would skip the work.
    scanners ? startClamd({ settings: { DisableCache: 'yes', MaxThreads: '8' } }) : null,
    scanners ? startSpamd() : null,
  ]);
  const pids = {
    redis: listenerPid(redis.port),
    sink: sink.pid,
    clamd: clamd ? listenerPid(clamd.port) : 0,
    spamd: spamd ? listenerPid(spamd.port) : 0,
  };
  return {
    dns, redis, sink, pids,
    clamd: clamd as ClamdServer,
    spamd: spamd as SpamdServer,
    async stop() {
      await Promise.allSettled([
        dns.stop(), redis.stop(), sink.stop(), clamd?.stop(), spamd?.stop(),
      ]);
    },
  };
}

/**
 * The pid of the process listening on a loopback TCP port (the harness does not hand out the
 * daemons' pids): the socket's inode in /proc/net/tcp, then the process holding it.
 * For spamd that is the parent; its preforked children are found as its descendants.
 */
export function listenerPid(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const table = readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1);
  const row = table.map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A');
  const inode = row?.[9];
  if (!inode) return 0;
  const owners: number[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) owners.push(Number(pid));
      } catch {
        // Gone meanwhile.
      }
    }
  }
  // Preforked children share the listening socket: the parent is the one whose parent is not
  // among them.
  return owners.find((pid) => !owners.includes(parentOf(pid))) ?? owners[0] ?? 0;
}
