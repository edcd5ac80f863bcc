/*
 * Renders docs/reasons.md from the reason tables, so the documented vocabulary is exactly the
 * one the code uses: `node dist/src/verdict/reasons-doc.js > docs/reasons.md`. A test checks the
 * shipped file lists every code.
 */

import { ADDRESS_REASONS } from '../envelope/address';
import { ENVELOPE_REASONS } from '../envelope/decision';
import { REASONS } from './reasons';

export function allReasonCodes(): string[] {
  return [
    ...Object.keys(REASONS), ...Object.keys(ENVELOPE_REASONS), ...Object.keys(ADDRESS_REASONS),
  ];
}

export function renderReasons(): string {
  const out = [
    '# Reason codes',
    '',
    'Every decision line Moat logs carries a `reason`, and the metrics `moat_messages_total`,',
    '`moat_recipients_total` and `moat_connections_total` are labelled by these codes. '
      + 'A code names',
    'one cause and is never reused for another. This file is generated from the code',
    '(`src/verdict/reasons-doc.ts`); do not edit it by hand.',
    '',
    '## Connections, messages and delivery',
    '',
    '| Code | Action | Reply | Meaning |',
    '|---|---|---|---|',
    ...Object.entries(REASONS).map(([code, spec]) =>
      `| \`${code}\` | ${spec.action} | ${spec.reply.code} ${spec.reply.enhanced} `
      + `| ${spec.meaning} |`),
    '',
    '## Envelope decisions (MAIL FROM, RCPT TO)',
    '',
    '| Code | Meaning |',
    '|---|---|',
    ...Object.entries(ENVELOPE_REASONS).map(([code, meaning]) => `| \`${code}\` | ${meaning} |`),
    '',
    '## Address syntax and relay tricks',
    '',
    'A recipient refused for a relay trick (source route, percent hack, bang path, quoted relay',
    'characters, address literal) gets 550 5.7.1; other syntax errors get 501 5.1.3 for a',
    'recipient and 501 5.1.7 for a sender.',
    '',
    '| Code | Meaning |',
    '|---|---|',
    ...Object.entries(ADDRESS_REASONS).map(([code, meaning]) => `| \`${code}\` | ${meaning} |`),
    '',
  ];
  return out.join('\n');
}

if (require.main === module) process.stdout.write(renderReasons());
