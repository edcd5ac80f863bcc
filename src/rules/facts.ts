/*
 * What the conditions read about one message, worked out once and only when a rule asks:
 * the decoded text (cut to a maximum), detector hits, the From display name, and the facts of
 * every attachment and of the files inside zip archives (true type, encryption, macros).
 */

import type { BlockList } from 'node:net';
import type { CheckResult } from '../verdict/verdict';
import { detect, type DetectorHit, type DetectorName } from './detectors';
import {
  hasDoubleExtension, hasMacros, listZip, refineZipType, sniffType, typeMismatch, type TrueType,
} from './filetype';
import { headerValues, type RuleAttachment, type RuleMessage } from './message';

export interface RuleEnvelope {
  /** Envelope sender, `` for the null sender. */
  sender: string;
  recipients: string[];
  clientIp: string;
}

export interface EvaluationInput {
  envelope: RuleEnvelope;
  message: RuleMessage;
  direction: 'inbound' | 'outbound';
  /** What the other checks recorded (SPF, DKIM, DMARC, blocklists, spam, virus...). */
  results: readonly CheckResult[];
  /** Moat's accepted domains, lower case. */
  acceptedDomains: ReadonlySet<string>;
  internalNetworks: BlockList;
  /** Text beyond this many characters is not searched (LIMITATION in docs/rules.md). */
  maxTextChars: number;
}

export interface FileFacts {
  name: string;
  declaredType: string;
  size: number;
  trueType: TrueType;
  encrypted: boolean;
  macros: boolean;
  mismatch: boolean;
  doubleExtension: boolean;
  /** The archive holding this file, or null for an attachment of the message itself. */
  archive: string | null;
}

export class MessageFacts {
  private bodyText: string | null = null;
  private scanText: string | null = null;
  private readonly hits = new Map<DetectorName, DetectorHit[]>();
  private files: FileFacts[] | null = null;

  constructor(readonly input: EvaluationInput) {}

  /** The body (text and HTML parts), cut to maxTextChars. */
  body(): string {
    this.bodyText ??= this.input.message.text.slice(0, this.input.maxTextChars);
    return this.bodyText;
  }

  /** What detectors search: subject, body, and the text attachments (CSV, TXT...). */
  detectorText(): string {
    if (this.scanText !== null) return this.scanText;
    const pieces = [this.input.message.subject, this.body()];
    let budget = this.input.maxTextChars - pieces[1]!.length;
    for (const file of this.input.message.attachments) {
      if (budget <= 0) break;
      const type = sniffType(headOf(file, 512));
      if (type !== 'text' && type !== 'html' && !file.declaredType.startsWith('text/')) continue;
      const text = file.bytes.subarray(0, budget).toString('utf8');
      pieces.push(text);
      budget -= text.length;
    }
    this.scanText = pieces.join('\n');
    return this.scanText;
  }

  detectorHits(detector: DetectorName): DetectorHit[] {
    let found = this.hits.get(detector);
    if (!found) {
      found = detect(detector, this.detectorText());
      this.hits.set(detector, found);
    }
    return found;
  }

  /** Every attachment, then every file found inside zip archives. */
  allFiles(): FileFacts[] {
    if (this.files) return this.files;
    const files: FileFacts[] = [];
    for (const attachment of this.input.message.attachments) {
      let trueType = sniffType(headOf(attachment, 0x8010));
      const listing = trueType === 'zip'
        ? listZip(attachment.bytes, attachment.filename || 'attachment.zip')
        : null;
      if (listing) trueType = refineZipType(listing.members);
      const name = attachment.filename;
      files.push({
        name, declaredType: attachment.declaredType, size: attachment.size, trueType,
        encrypted: listing?.members.some((member) => member.encrypted) ?? false,
        macros: hasMacros(() => attachment.bytes, trueType, listing?.members ?? []),
        mismatch: typeMismatch(name, attachment.declaredType, trueType),
        doubleExtension: hasDoubleExtension(name),
        archive: null,
      });
      // An Office document is a zip, but its members are not attachments anyone opens.
      if (!listing || trueType !== 'zip') continue;
      for (const member of listing.members) {
        files.push({
          name: member.name, declaredType: '', size: member.size, trueType: member.trueType,
          encrypted: member.encrypted, macros: false,
          mismatch: member.trueType !== 'unknown' && typeMismatch(member.name, '', member.trueType),
          doubleExtension: hasDoubleExtension(member.name),
          archive: member.archive,
        });
      }
    }
    this.files = files;
    return files;
  }

  /** The display name and address of the From header. */
  from(): { displayName: string; address: string } {
    const value = headerValues(this.input.message, 'from')[0] ?? '';
    const angle = /^(.*)<([^<>]*)>\s*$/.exec(value);
    if (!angle) return { displayName: '', address: value.trim().toLowerCase() };
    const displayName = (angle[1] ?? '').trim().replace(/^"(.*)"$/, '$1').replace(/\\(.)/g, '$1');
    return { displayName, address: (angle[2] ?? '').trim().toLowerCase() };
  }

  isAcceptedDomain(domain: string): boolean {
    const lower = domain.toLowerCase();
    for (const accepted of this.input.acceptedDomains) {
      if (lower === accepted || lower.endsWith(`.${accepted}`)) return true;
    }
    return false;
  }
}

export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/** The first octets of an attachment, read alone when it can be (RuleAttachment.head). */
function headOf(attachment: RuleAttachment, length: number): Buffer {
  return attachment.head ? attachment.head(length) : attachment.bytes.subarray(0, length);
}
