/*
 * The parts of mailauth 7 Moat calls, with the result shapes Moat reads, typed.
 *
 * mailauth does the cryptography and the RFC logic (SPF evaluation, DKIM and ARC verification,
 * DMARC policy discovery and alignment). Moat calls its steps one by one rather than
 * authenticate(), so that it can decide which DKIM signatures count for DMARC (an l= tag that
 * leaves content unsigned does not, by default) and never fetches BIMI over HTTP.
 * Field meanings: node_modules/mailauth/docs/{spf,dkim,dmarc,arc}.md.
 */

/** dns.promises.resolve semantics; ENOTFOUND/ENODATA mean "no such record". */
export type DnsResolve = (name: string, rrtype: string) => Promise<unknown>;

export interface MailauthSpfResult {
  domain?: string;
  status: { result: string; comment?: string };
  info: string;
  rr?: string;
  lookups?: { limit?: number; count?: number; void?: number };
}

export interface MailauthDkimSignature {
  id: string;
  signingDomain?: string;
  selector?: string;
  algo?: string;
  format?: string;
  modulusLength?: number;
  canonBodyLength?: number;
  canonBodyLengthTotal?: number;
  canonBodyLengthLimited?: boolean;
  status: {
    result: string;
    comment?: string;
    aligned?: string | false;
    underSized?: number;
    testing?: boolean;
    policy?: Record<string, string>;
  };
  info: string;
}

export interface MailauthArcData {
  lastEntry?: { i?: number; 'arc-seal'?: { parsed?: { d?: { value?: string } } } } | false;
}

export interface MailauthDkimResult {
  headerFrom: string[];
  fromFields?: unknown;
  results: MailauthDkimSignature[];
  arc: MailauthArcData;
}

export interface MailauthArcResult {
  status: { result: string; comment?: string };
  i?: number | false;
  info?: string;
}

export interface MailauthDmarcResult {
  status: { result: string; comment?: string; header?: { from?: string; d?: string } };
  domain?: string;
  policyDomain?: string;
  policy?: string;
  p?: string;
  sp?: string;
  testMode?: boolean;
  error?: string;
  alignment?: {
    spf: { result?: string; strict: boolean };
    dkim: { result?: string; strict: boolean; underSized?: number };
  };
  info: string;
}

interface Mailauth {
  spf(options: Record<string, unknown>): Promise<MailauthSpfResult>;
  dkimVerify(
    message: Buffer | NodeJS.ReadableStream, options: Record<string, unknown>,
  ): Promise<MailauthDkimResult>;
  arc(data: MailauthArcData, options: Record<string, unknown>): Promise<MailauthArcResult>;
}

interface MailauthDmarc {
  evaluateDmarc(options: Record<string, unknown>): Promise<{
    response: MailauthDmarcResult | false; reason?: string;
  }>;
}

// mailauth is CommonJS; its bundled declarations describe less than Moat reads.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const mailauth = require('mailauth') as Mailauth;
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const mailauthDmarc = require('mailauth/lib/dmarc') as MailauthDmarc;
