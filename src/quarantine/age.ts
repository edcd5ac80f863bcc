/*
 * Ages and retention periods for the quarantine: `30d`, `12h`, `90m`, `2w`, `45s`, `0`.
 *
 * The core duration parser (src/config/values.ts) stops at hours because SMTP deadlines never
 * need more; quarantine retention is counted in days. A bare number is days here, because
 * "purge --older-than 30" meaning 30 seconds would delete a month of held mail by mistake.
 */

import { ValueProblem } from '../config/values';

const UNIT_MS: Record<string, number> = {
  s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000,
};

/** Longest age accepted: ten years, far beyond any retention law, short of Date overflow. */
export const MAX_AGE_MS = 3650 * UNIT_MS['d']!;

export const AGE_EXPECTED = 'an age such as 30d, 12h, 90m, 2w or 45s (a bare number is days)';

/** Milliseconds for an age; throws ValueProblem with what was expected. */
export function parseAge(raw: string): number {
  const match = /^(\d{1,6})\s*([smhdw]?)$/i.exec(raw.trim());
  if (!match) throw new ValueProblem(AGE_EXPECTED);
  const unit = (match[2] || 'd').toLowerCase();
  const ms = Number(match[1]) * (UNIT_MS[unit] ?? UNIT_MS['d']!);
  if (ms > MAX_AGE_MS) throw new ValueProblem(`${AGE_EXPECTED}, at most 3650d`);
  return ms;
}

/** `30d`, `5h`, `12m`, `40s`: the largest whole unit, for messages and tables. */
export function formatAge(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  if (ms >= UNIT_MS['d']!) return `${Math.floor(ms / UNIT_MS['d']!)}d`;
  if (ms >= UNIT_MS['h']!) return `${Math.floor(ms / UNIT_MS['h']!)}h`;
  if (ms >= UNIT_MS['m']!) return `${Math.floor(ms / UNIT_MS['m']!)}m`;
  return `${Math.floor(ms / 1000)}s`;
}
