/*
 * Settings of the sender-authentication checks: SPF, DKIM, DMARC, ARC, the From header and the
 * Authentication-Results header. defaults.ts appends AUTH_SETTINGS to the table and load.ts
 * calls buildAuthConfig. Per-domain keys (allowed in `[domain example.com]` sections, keyed by
 * the recipient's domain) are in AUTH_DOMAIN_SETTINGS.
 *
 * The DNS servers and timeouts are not here: every check shares Moat's one resolver
 * (dns.servers, MOAT_DNS_SERVERS).
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';
import {
  parseBoolean, parseChoice, parseCidr, parseDomain, parseDuration, parseHostname, parseInteger,
  parseList,
} from '../values';

/** What the auth checks may do for one accepted domain. */
export type AuthPolicy = 'enforce' | 'tag' | 'off';
/** What a temporary DNS failure (temperror) leads to. */
export type AuthTemperrorAction = 'record' | 'tempfail';

export const AUTH_POLICIES: readonly AuthPolicy[] = ['enforce', 'tag', 'off'];
export const AUTH_TEMPERROR_ACTIONS: readonly AuthTemperrorAction[] = ['record', 'tempfail'];

const SECOND = 1000;

const domains = (raw: string): string[] => parseList(raw).map(parseDomain);
const networks = (raw: string): string[] => parseList(raw).map(parseCidr);

export const AUTH_SETTINGS: readonly SettingSpec[] = [
  { section: 'auth', key: 'policy', default: 'enforce',
    why: 'enforce refuses/quarantines spoofs, tag only marks them, off only records results',
    parse: (raw) => parseChoice(raw, AUTH_POLICIES) },
  { section: 'auth', key: 'authserv_id', default: '',
    why: 'the name in our Authentication-Results header; empty uses smtp.hostname',
    parse: (raw) => (raw.trim() === '' ? '' : parseHostname(raw)) },
  { section: 'auth', key: 'check_internal', default: 'false',
    why: 'clients in smtp.internal_networks are ours: no SPF/DKIM/DMARC, no From check',
    parse: parseBoolean },
  { section: 'auth', key: 'spf_fail_action', default: 'record',
    why: 'reject refuses SPF fail before DATA; record leaves it to DMARC (forwarders break SPF)',
    parse: (raw) => parseChoice(raw, ['reject', 'record'] as const) },
  { section: 'auth', key: 'spf_fail_stage', default: 'rcpt',
    why: 'rcpt applies each recipient domain\'s policy; mail refuses at once (global policy)',
    parse: (raw) => parseChoice(raw, ['mail', 'rcpt'] as const) },
  { section: 'auth', key: 'spf_timeout', default: '8s',
    why: 'a whole SPF evaluation past this is temperror (RFC 7208 4.6.4 suggests 20s at most)',
    parse: (raw) => parseDuration(raw, 100, 60 * SECOND) },
  { section: 'auth', key: 'message_timeout', default: '15s',
    why: 'DKIM, ARC and DMARC of one message past this are temperror, not a stuck client',
    parse: (raw) => parseDuration(raw, 100, 120 * SECOND) },
  { section: 'auth', key: 'dkim_min_rsa_bits', default: '1024',
    why: 'RFC 8301: keys under 1024 bits are not a pass (dkim=policy)',
    parse: (raw) => parseInteger(raw, 512, 16384) },
  { section: 'auth', key: 'dkim_reject_rsa_sha1', default: 'true',
    why: 'RFC 8301: rsa-sha1 signatures must not be treated as valid (dkim=policy)',
    parse: parseBoolean },
  { section: 'auth', key: 'dkim_partial_body', default: 'policy',
    why: 'a signature whose l= leaves content unsigned: policy (no pass) or pass (trust it)',
    parse: (raw) => parseChoice(raw, ['policy', 'pass'] as const) },
  { section: 'auth', key: 'dmarc_quarantine_action', default: 'quarantine',
    why: 'what p=quarantine does when DMARC fails: quarantine the message, or tag it only',
    parse: (raw) => parseChoice(raw, ['quarantine', 'tag'] as const) },
  { section: 'auth', key: 'dmarc_exempt_domains', default: '',
    why: 'From domains (and their subdomains) whose DMARC failures are recorded, never acted on',
    parse: domains },
  { section: 'auth', key: 'dmarc_exempt_networks', default: '',
    why: 'forwarders and mailing lists by client address: DMARC failures only recorded',
    parse: networks },
  { section: 'auth', key: 'arc_trusted_sealers', default: '',
    why: 'a valid ARC chain whose newest seal is by one of these overrides a DMARC failure',
    parse: domains },
  { section: 'auth', key: 'temperror_action', default: 'record',
    why: 'record keeps mail flowing when DNS fails; tempfail answers 451 so the sender retries',
    parse: (raw) => parseChoice(raw, AUTH_TEMPERROR_ACTIONS) },
];

export const AUTH_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [
  { key: 'auth_policy',
    why: 'enforce, tag or off for mail to this domain (the strictest of a message\'s wins)',
    parse: (raw) => parseChoice(raw, AUTH_POLICIES) },
  { key: 'auth_temperror',
    why: 'record or tempfail when SPF/DKIM/DMARC lookups fail for mail to this domain',
    parse: (raw) => parseChoice(raw, AUTH_TEMPERROR_ACTIONS) },
];

export interface AuthConfig {
  policy: AuthPolicy;
  /** Empty means smtp.hostname. */
  authservId: string;
  checkInternal: boolean;
  spfFailAction: 'reject' | 'record';
  spfFailStage: 'mail' | 'rcpt';
  spfTimeoutMs: number;
  messageTimeoutMs: number;
  dkimMinRsaBits: number;
  dkimRejectRsaSha1: boolean;
  dkimPartialBody: 'policy' | 'pass';
  dmarcQuarantineAction: 'quarantine' | 'tag';
  dmarcExemptDomains: string[];
  dmarcExemptNetworks: string[];
  arcTrustedSealers: string[];
  temperrorAction: AuthTemperrorAction;
}

export function buildAuthConfig(get: <T>(name: string) => T): AuthConfig {
  return {
    policy: get('auth.policy'),
    authservId: get('auth.authserv_id'),
    checkInternal: get('auth.check_internal'),
    spfFailAction: get('auth.spf_fail_action'),
    spfFailStage: get('auth.spf_fail_stage'),
    spfTimeoutMs: get('auth.spf_timeout'),
    messageTimeoutMs: get('auth.message_timeout'),
    dkimMinRsaBits: get('auth.dkim_min_rsa_bits'),
    dkimRejectRsaSha1: get('auth.dkim_reject_rsa_sha1'),
    dkimPartialBody: get('auth.dkim_partial_body'),
    dmarcQuarantineAction: get('auth.dmarc_quarantine_action'),
    dmarcExemptDomains: get('auth.dmarc_exempt_domains'),
    dmarcExemptNetworks: get('auth.dmarc_exempt_networks'),
    arcTrustedSealers: get('auth.arc_trusted_sealers'),
    temperrorAction: get('auth.temperror_action'),
  };
}
