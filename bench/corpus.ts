/*
 * The benchmark's corpus and the DNS records that make it authenticate, generated at start
 * from a seed (the same seed gives the same corpus, so runs compare).
 *
 * Mix (of `size` messages, shuffled): about 80% 4-10 KB text (plain, or text and HTML), 15%
 * 50-200 KB with a PDF-like attachment, 5% 1-2 MB with a large attachment; half of the
 * senders' domains sign with DKIM (RSA 2048); every domain publishes SPF for the corpus's
 * client range and a DMARC record (p=reject or p=none). On top of the clean mail: 3% from a
 * client address a DNS blocklist lists, 2% carrying the EICAR test file, 2% with GTUBE.
 *
 * What the full pipeline must answer: 554 at connect for the listed clients, 554 at the end of
 * DATA for EICAR, 550 for GTUBE, 250 for the rest; relay-only answers 250 to everything.
 *
 * Client addresses (presented with the PROXY protocol): 192.0.2.1-200 for ordinary senders,
 * 203.0.113.10-19 for listed ones; TEST-NET ranges, as the project's tests use.
 */

import { randomBytes } from 'node:crypto';

import { rsaKey, dkimSigned, type TestKey } from '../test/fixtures/auth/signing';
import type { DnsRecordType } from '../test/harness/dns-records';
import { EICAR_STRING, GTUBE_STRING, messageDate } from '../test/harness/samples';
import type { LoadMessage } from './load';

export const BLOCKLIST_ZONE = 'bl.bench.test';
export const ACCEPTED_DOMAIN = 'example.com';
const SENDER_DOMAINS = 8;
const WORDS = ('the of and to in is for on that with as this by be are from at or an have it '
  + 'meeting report invoice quarter budget delivery schedule project review team customer '
  + 'contract update agenda attached please find regards thanks office travel order account '
  + 'proposal draft minutes summary planning policy approval request support service week '
  + 'monday friday morning afternoon question answer figures numbers sales market product')
  .split(' ');

export interface DnsEntry {
  name: string;
  type: DnsRecordType;
  data: string;
}

export interface Corpus {
  messages: LoadMessage[];
  /** The ~10 KB message smtp-source sends (-F): LF line ends, smtp-source adds CR. */
  typical: { file: string; from: string; to: string };
  records: DnsEntry[];
  /** Counts per kind, for the report. */
  mix: Record<string, number>;
}

/** A small, seedable generator (mulberry32): the corpus must not change between runs. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function buildCorpus(size = 200, seed = 8): Promise<Corpus> {
  const random = seededRandom(seed);
  const between = (low: number, high: number): number => Math.floor(low + random() * (high - low));
  const records: DnsEntry[] = [];

  // Sender domains: SPF for the client ranges, DMARC, and a DKIM key for every other one.
  const domains: Array<{ name: string; key: TestKey | null }> = [];
  for (let index = 1; index <= SENDER_DOMAINS; index++) {
    const name = `sender${index}.bench.test`;
    const key = index % 2 === 0 ? rsaKey(2048) : null;
    records.push({
      name, type: 'TXT', data: 'v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 ip4:127.0.0.1 -all',
    });
    records.push({ name: `_dmarc.${name}`, type: 'TXT',
      data: `v=DMARC1; p=${index % 3 === 0 ? 'none' : 'reject'}` });
    if (key) records.push({ name: `s1._domainkey.${name}`, type: 'TXT', data: key.record });
    domains.push({ name, key });
  }
  for (let last = 10; last <= 19; last++) {
    records.push({ name: `${last}.113.0.203.${BLOCKLIST_ZONE}`, type: 'A', data: '127.0.0.2' });
  }

  const mix: Record<string, number> = {};
  const messages: LoadMessage[] = [];
  for (let index = 0; index < size; index++) {
    const roll = random();
    const kind = roll < 0.03 ? 'listed' : roll < 0.05 ? 'eicar' : roll < 0.07 ? 'gtube'
      : roll < 0.12 ? 'large' : roll < 0.27 ? 'medium' : 'small';
    mix[kind] = (mix[kind] ?? 0) + 1;
    const domain = domains[between(0, domains.length)] as (typeof domains)[number];
    const sender = pick(random, ['alice', 'bob', 'carol', 'dave', 'erin']);
    const from = `${sender}${index}@${domain.name}`;
    const recipients = random() < 0.1 ? between(2, 4) : 1;
    const to = Array.from({ length: recipients },
      () => `user${between(1, 200)}@${ACCEPTED_DOMAIN}`);
    const clientIp = kind === 'listed'
      ? `203.0.113.${between(10, 20)}` : `192.0.2.${between(1, 201)}`;

    const id = `<bench-${seed}-${index}@${domain.name}>`;
    let text = buildMessage(random, kind, { from, to, id });
    if (domain.key) {
      text = await dkimSigned(text, { domain: domain.name, selector: 's1', key: domain.key });
    }
    const expect = kind === 'listed' ? { code: 554, at: 'connect' as const }
      : kind === 'eicar' ? { code: 554, at: 'data' as const }
        : kind === 'gtube' ? { code: 550, at: 'data' as const }
          : { code: 250, at: 'data' as const };
    messages.push({ name: `${kind}-${index}`, from, to, wire: dotStuffed(text), clientIp, expect });
  }

  // The message smtp-source sends: about 10 KB of text from the first domain, unsigned.
  const firstDomain = (domains[0] as (typeof domains)[number]).name;
  const typicalFrom = `alice@${firstDomain}`;
  const typicalTo = `user1@${ACCEPTED_DOMAIN}`;
  const typicalText = buildMessage(seededRandom(seed + 1), 'typical', {
    from: typicalFrom, to: [typicalTo], id: `<bench-typical@${firstDomain}>`,
  });
  return {
    messages, records, mix,
    typical: { file: typicalText.replace(/\r\n/g, '\n'), from: typicalFrom, to: typicalTo },
  };
}

/** A message of about `bytes` with one attachment of that size (the memory test's 20 MB). */
export function bigMessage(from: string, to: string, bytes: number, id: string): Buffer {
  const raw = randomBytes(Math.floor((bytes * 3) / 4));
  const head = headers({ from, to: [to], id, subject: 'Large attachment' },
    'multipart/mixed; boundary="bench-big"');
  const text = `${head}\r\n--bench-big\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`
    + 'The file is attached.\r\n--bench-big\r\nContent-Type: application/octet-stream; '
    + 'name="data.bin"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; '
    + `filename="data.bin"\r\n\r\n${base64Lines(raw)}\r\n--bench-big--\r\n`;
  return Buffer.from(text, 'latin1');
}

function buildMessage(
  random: () => number, kind: string, envelope: { from: string; to: string[]; id: string },
): string {
  const between = (low: number, high: number): number => Math.floor(low + random() * (high - low));
  const subject = sentence(random, between(3, 8)).replace(/\.$/, '');

  if (kind === 'small' || kind === 'listed' || kind === 'typical' || kind === 'gtube') {
    const target = kind === 'typical' ? 10_000 : between(4_000, 10_000);
    let body = paragraphs(random, target - 600);
    if (kind === 'gtube') body = `${body}\r\n${GTUBE_STRING}\r\n`;
    if (kind !== 'typical' && random() < 0.5) {
      const paragraphsHtml = body.replace(/\r\n\r\n/g, '</p>\r\n<p>');
      const html = `<html><body><p>${paragraphsHtml}</p></body></html>\r\n`;
      const type = 'multipart/alternative; boundary="bench-alt"';
      return `${headers({ ...envelope, subject }, type)}\r\n`
        + `--bench-alt\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n${body}`
        + '--bench-alt\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n'
        + `${html}--bench-alt--\r\n`;
    }
    return `${headers({ ...envelope, subject }, 'text/plain; charset=us-ascii')}\r\n${body}`;
  }

  // With an attachment: a PDF-looking file, or the EICAR test file.
  const attachmentBytes = kind === 'large' ? between(750_000, 1_500_000)
    : kind === 'medium' ? between(37_000, 150_000) : 0;
  const attachment = kind === 'eicar'
    ? { name: 'eicar.com', type: 'application/octet-stream',
      bytes: Buffer.from(EICAR_STRING, 'latin1') }
    : { name: `report-${between(1, 999)}.pdf`, type: 'application/pdf',
      bytes: pdfLike(random, attachmentBytes) };
  const body = paragraphs(random, between(1_000, 3_000));
  return `${headers({ ...envelope, subject }, 'multipart/mixed; boundary="bench-mixed"')}\r\n`
    + `--bench-mixed\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n${body}`
    + `--bench-mixed\r\nContent-Type: ${attachment.type}; name="${attachment.name}"\r\n`
    + 'Content-Transfer-Encoding: base64\r\n'
    + `Content-Disposition: attachment; filename="${attachment.name}"\r\n\r\n`
    + `${base64Lines(attachment.bytes)}\r\n--bench-mixed--\r\n`;
}

function headers(
  envelope: { from: string; to: string[]; id: string; subject: string }, contentType: string,
): string {
  return [
    `From: <${envelope.from}>`,
    `To: ${envelope.to.map((address) => `<${address}>`).join(', ')}`,
    `Subject: ${envelope.subject}`,
    `Message-ID: ${envelope.id}`,
    `Date: ${messageDate()}`,
    'MIME-Version: 1.0',
    `Content-Type: ${contentType}`,
    '',
  ].join('\r\n');
}

/** Bytes that start like a PDF (so file-type checks agree with the name) and then vary. */
function pdfLike(random: () => number, bytes: number): Buffer {
  const content = Buffer.alloc(Math.max(bytes, 64));
  Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1').copy(content);
  for (let offset = 16; offset < content.length; offset++) {
    content[offset] = Math.floor(random() * 256);
  }
  return content;
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

function sentence(random: () => number, words: number): string {
  const list = Array.from({ length: words }, () => pick(random, WORDS));
  const text = list.join(' ');
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/** Text of about `bytes`, in short lines and paragraphs, CRLF. */
function paragraphs(random: () => number, bytes: number): string {
  const lines: string[] = [];
  let length = 0;
  let line = '';
  while (length < bytes) {
    const next = sentence(random, 4 + Math.floor(random() * 10));
    if (line && line.length + next.length + 1 > 76) {
      lines.push(line);
      length += line.length + 2;
      line = '';
      if (random() < 0.15) lines.push('');
    }
    line = line ? `${line} ${next}` : next;
  }
  if (line) lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}

function base64Lines(content: Buffer): string {
  const encoded = content.toString('base64');
  const lines: string[] = [];
  for (let start = 0; start < encoded.length; start += 76) {
    lines.push(encoded.slice(start, start + 76));
  }
  return lines.join('\r\n');
}

/** CRLF text as it goes on the wire after DATA: lines starting with a dot get another. */
export function dotStuffed(text: string): Buffer {
  const stuffed = text.replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(stuffed.endsWith('\r\n') ? stuffed : `${stuffed}\r\n`, 'latin1');
}
