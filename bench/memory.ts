/*
 * The memory runs: 50 connections each sending one 20 MB message at the same moment, to the
 * relay-only and to the full-pipeline Moat, with Moat's resident memory (all its processes,
 * summed) sampled every 100 ms. Haraka keeps a message in memory up to its spool_after and on
 * disk beyond; every Moat stage after it should stream, so the peak should stay far below
 * 50 x 20 MB. The sender and the sink share one copy of the message in the benchmark process.
 */

import { bigMessage, dotStuffed } from './corpus';
import { PROXY_CLIENT, type BenchGateway } from './gateways';
import { runLoad, type LoadMessage } from './load';
import { measure } from './measure';

export interface MemoryRun {
  mode: 'relay' | 'full';
  concurrency: number;
  messageMb: number;
  peakMb: number;
  accepted: number;
  seconds: number;
  codes: Record<string, number>;
  examples: string[];
}

export interface MemoryReport {
  runs: MemoryRun[];
}

export async function runMemoryChecks(
  relay: BenchGateway, full: BenchGateway, say: (text: string) => void,
  concurrency = 50, messageMb = 20,
): Promise<MemoryReport> {
  const from = 'alice@sender1.bench.test';
  const to = 'user1@example.com';
  const raw = bigMessage(from, to, messageMb * 1024 * 1024, '<bench-big@sender1.bench.test>');
  const message: LoadMessage = {
    name: `big-${messageMb}mb`, from, to: [to], wire: dotStuffed(raw.toString('latin1')),
    clientIp: '192.0.2.77', expect: { code: 250, at: 'data' },
  };

  const runs: MemoryRun[] = [];
  for (const gateway of [relay, full]) {
    say(`memory: ${concurrency} x ${messageMb} MB at once to the ${gateway.mode} gateway`);
    const subjects = { trees: { moat: gateway.pid }, memoryOf: gateway.pid };
    const measured = await measure(subjects, () => runLoad({
      host: gateway.gateway.host, port: gateway.gateway.port, concurrency, messages: [message],
      count: concurrency, timeoutMs: 600_000,
      ...(gateway.mode === 'full' ? { proxyFrom: PROXY_CLIENT } : {}),
    }));
    const report = measured.result;
    runs.push({
      mode: gateway.mode, concurrency, messageMb,
      peakMb: Math.round(measured.peakRssBytes / 1024 / 1024),
      accepted: report.codes['250@data'] ?? 0,
      seconds: Math.round(measured.wallMs / 100) / 10,
      codes: report.codes, examples: report.examples,
    });
    say(`memory: ${gateway.mode}: peak ${runs.at(-1)?.peakMb} MB, ${JSON.stringify(report.codes)}`);
  }
  return { runs };
}
