/*
 * The DNS lookup function the auth checks hand to mailauth: Moat's shared resolver
 * (src/dns/resolver.ts: dns.servers / MOAT_DNS_SERVERS, query timeouts, a TTL-respecting cache
 * for answers and NXDOMAIN/NODATA, metrics). It has dns.promises.resolve semantics, which is
 * what mailauth expects: ENOTFOUND and ENODATA mean "no such record", any other error becomes
 * temperror in the result.
 */

import type { MoatConfig } from '../config/types';
import { mailauthResolver } from '../dns/resolver';
import type { DnsResolve } from './mailauth';

export function authResolver(config: MoatConfig): DnsResolve {
  return mailauthResolver(config);
}
