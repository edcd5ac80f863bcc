/*
 * `node dist/bench/profile.js [relay|full] [messages] [sessions] [source|client]`: where Moat's
 * CPU goes.
 *
 * Starts the services and one gateway under V8's sampling profiler (--cpu-prof through
 * NODE_OPTIONS), sends it `messages` copies of the benchmark's ~10 KB message with smtp-source
 * (relay, or `source`) or the mixed corpus with the benchmark's client (full, or `client`),
 * stops it (the profile is written at exit) and prints the functions and the files with the
 * most self time, and for the costliest functions the call paths that lead to them.
 * MOAT_PROFILE_DIR keeps the raw profile (for Chrome DevTools or speedscope).
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import { makeTempDir } from '../test/harness/process';
import { buildCorpus } from './corpus';
import { PROXY_CLIENT, startBenchGateway, type Mode } from './gateways';
import { runLoad } from './load';
import { startServices } from './services';
import { runSmtpSource } from './smtp-source';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export async function profile(
  mode: Mode, messages: number, sessions: number,
  tool: 'source' | 'client' = mode === 'relay' ? 'source' : 'client',
): Promise<void> {
  const corpus = await buildCorpus();
  const services = await startServices(corpus.records, mode === 'full');
  const dir = process.env['MOAT_PROFILE_DIR'] ?? makeTempDir('bench-profile');
  const gateway = await startBenchGateway(mode, services, {
    env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` },
  });
  try {
    if (tool === 'source') {
      await runSmtpSource({ host: gateway.gateway.host, port: gateway.gateway.port, sessions,
        count: messages, file: corpus.typical.file, from: corpus.typical.from,
        to: corpus.typical.to });
    } else {
      await runLoad({ host: gateway.gateway.host, port: gateway.gateway.port, concurrency: sessions,
        messages: corpus.messages, count: messages, proxyFrom: PROXY_CLIENT });
    }
  } finally {
    await gateway.stop();
    await services.stop();
  }

  // The newest: MOAT_PROFILE_DIR may still hold an earlier run's profile.
  const file = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => ({ name, at: statSync(join(dir, name)).mtimeMs }))
    .sort((a, b) => b.at - a.at)[0]?.name;
  if (!file) throw new Error(`no profile written in ${dir}`);
  summarise(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, messages);
  process.stdout.write(`profile: ${join(dir, file)}${process.env['MOAT_PROFILE_DIR'] ? ''
    : ' (removed when this process exits: set MOAT_PROFILE_DIR to keep it)'}\n`);
}

function summarise(profileData: CpuProfile, messages: number): void {
  const selfMs = new Map<number, number>();
  profileData.samples.forEach((id, index) => {
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profileData.timeDeltas[index] ?? 0) / 1000);
  });
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (const node of profileData.nodes) {
    const ms = selfMs.get(node.id) ?? 0;
    const frame = node.callFrame;
    if (frame.functionName === '(idle)' || frame.functionName === '(program)') continue;
    total += ms;
    const where = shorten(frame.url);
    const name = `${frame.functionName || '(anonymous)'} ${where}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    byFile.set(where || '(native)', (byFile.get(where || '(native)') ?? 0) + ms);
  }
  const top = (map: Map<string, number>, count: number): string[] => [...map.entries()]
    .sort((a, b) => b[1] - a[1]).slice(0, count)
    .map(([name, ms]) => {
      const share = ((ms / total) * 100).toFixed(1).padStart(5);
      return `${(ms / messages).toFixed(3).padStart(8)} ms/msg ${share}%  ${name}`;
    });
  const perMessage = (total / messages).toFixed(3);
  const paths = callPaths(profileData, selfMs, messages).join('\n');
  process.stdout.write(`busy ${perMessage} ms per message (JavaScript, GC, native)\n`);
  process.stdout.write(`\ncall paths to the costliest functions:\n${paths}\n`);
  process.stdout.write(`\nfiles:\n${top(byFile, 30).join('\n')}\n\n`
    + `functions:\n${top(byFunction, 40).join('\n')}\n`);
}

/** For the 12 costliest functions, their 3 heaviest call paths (5 frames up). */
function callPaths(
  profileData: CpuProfile, selfMs: Map<number, number>, messages: number,
): string[] {
  const parent = new Map<number, ProfileNode>();
  const byId = new Map(profileData.nodes.map((node) => [node.id, node]));
  for (const node of profileData.nodes) {
    for (const child of node.children ?? []) parent.set(child, node);
  }
  const label = (node: ProfileNode): string => `${node.callFrame.functionName || '(anonymous)'} `
    + `${shorten(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
  const paths = new Map<string, Map<string, number>>();
  for (const [id, ms] of selfMs) {
    const node = byId.get(id);
    if (!node || ['(idle)', '(program)'].includes(node.callFrame.functionName)) continue;
    const chain: string[] = [];
    for (let up = parent.get(id); up && chain.length < 5; up = parent.get(up.id)) {
      chain.push(label(up));
    }
    const own = paths.get(label(node)) ?? new Map<string, number>();
    own.set(chain.join(' < '), (own.get(chain.join(' < ')) ?? 0) + ms);
    paths.set(label(node), own);
  }
  const total = (map: Map<string, number>): number => [...map.values()].reduce((a, b) => a + b, 0);
  const costliest = [...paths.entries()].sort((a, b) => total(b[1]) - total(a[1])).slice(0, 12);
  return costliest.flatMap(([name, chains]) => [
    `${(total(chains) / messages).toFixed(3)} ms/msg ${name}`,
    ...[...chains.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([chain, ms]) => `    ${(ms / messages).toFixed(3)} < ${chain}`),
  ]);
}

function shorten(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const inModules = path.lastIndexOf('node_modules/');
  if (inModules !== -1) return path.slice(inModules + 'node_modules/'.length);
  return path.startsWith('/') ? relative(process.cwd(), path) : path;
}

if (require.main === module) {
  const [mode = 'relay', messages = '3000', sessions = '10', tool] = process.argv.slice(2);
  if (mode !== 'relay' && mode !== 'full') throw new RangeError('mode: relay or full');
  if (tool !== undefined && tool !== 'source' && tool !== 'client') {
    throw new RangeError('tool: source (smtp-source, the ~10 KB message) or client (the corpus)');
  }
  profile(mode, Number(messages), Number(sessions), tool).then(() => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`profile: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
