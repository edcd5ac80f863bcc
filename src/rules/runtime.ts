/*
 * The rules engine's per-process state: the rule set in use (loaded on first use, watched for
 * changes when rules.reload is on) and what decides a message's direction.
 *
 * Direction: a message is outbound when its envelope sender is in one of Moat's accepted
 * domains AND the client connects from smtp.internal_networks (the organisation's own servers
 * and users sending out through Moat); everything else is inbound. A forged internal sender
 * from the internet is therefore inbound, and internal rules cannot be dodged by forging.
 */

import { BlockList, isIP } from 'node:net';
import type { MoatConfig } from '../config/types';
import { log } from '../observability/decision-log';
import { countRulesReload, setRuleSetInUse } from '../observability/metrics-rules';
import { normaliseIp } from './conditions';
import { RulesError } from './errors';
import { domainOf } from './facts';
import { expiredRules } from './loader';
import { RuleSetHolder } from './reload';
import type { RuleSet } from './schema';

let holder: RuleSetHolder | null = null;
const networksByConfig = new WeakMap<MoatConfig, BlockList>();

/** The rule set holder; throws RulesError when the set on disk is bad (start-up must stop). */
export function getRules(config: MoatConfig): RuleSetHolder {
  if (holder) return holder;
  holder = RuleSetHolder.load(config.rulesDir, {
    loaded(set, previous) {
      countRulesReload('loaded');
      announce(set, 'rule set reloaded', { previous: previous.version });
    },
    refused(error, kept) {
      countRulesReload('refused');
      const problems = error instanceof RulesError ? error.lines() : [error.message];
      for (const problem of problems) {
        log('error', 'rules', `rule problem: ${problem}`, { problem });
      }
      log('error', 'rules', 'rule set refused at reload; the previous set keeps running', {
        kept: kept.version, problems: problems.length,
      });
    },
  });
  announce(holder.current, 'rule set loaded', {});
  if (config.rules.reload) holder.watch(config.rules.reloadDelayMs);
  return holder;
}

function announce(set: RuleSet, message: string, extra: Record<string, unknown>): void {
  const expired = expiredRules(set);
  const disabled = set.rules.filter((rule) => !rule.enabled).length;
  setRuleSetInUse(set.version, {
    active: set.rules.length - disabled - expired.length, disabled, expired: expired.length,
  });
  log('info', 'rules', message, {
    version: set.version, dir: set.dir, files: set.files.length, rules: set.rules.length, ...extra,
  });
  for (const rule of expired) {
    log('warn', 'rules', `rule ${rule.id} expired on ${rule.expires} and no longer runs`, {
      rule: rule.id, owner: rule.owner, where: rule.where,
    });
  }
}

export function internalNetworks(config: MoatConfig): BlockList {
  let list = networksByConfig.get(config);
  if (list) return list;
  list = new BlockList();
  for (const cidr of config.smtp.internalNetworks) {
    const [address = '', bits] = cidr.split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  networksByConfig.set(config, list);
  return list;
}

export function directionOf(sender: string, clientIp: string, acceptedDomains: ReadonlySet<string>,
  networks: BlockList): 'inbound' | 'outbound' {
  const domain = domainOf(sender);
  if (domain === '' || !acceptedDomains.has(domain)) return 'inbound';
  const ip = normaliseIp(clientIp);
  return networks.check(ip, ip.includes(':') ? 'ipv6' : 'ipv4') ? 'outbound' : 'inbound';
}

/** Tests only: forget the loaded set. */
export function resetRulesForTests(): void {
  holder?.close();
  holder = null;
}
