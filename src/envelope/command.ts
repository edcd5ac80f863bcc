/*
 * Cuts the path out of a MAIL FROM or RCPT TO command line exactly as the client sent it.
 *
 * Haraka parses addresses leniently before Moat's hooks run; Moat re-reads the raw line so its
 * own strict parser (address.ts) judges what the client really wrote. Returns the path with
 * its angle brackets (`<a@b.example>`), the bare word when the client sent none, or null when
 * the line is not the expected command. A `>` inside a quoted local part does not end the path.
 */

export function extractCommandPath(line: string, verb: 'MAIL FROM' | 'RCPT TO'): string | null {
  const prefix = new RegExp(`^${verb.replace(' ', '\\s+')}\\s*:\\s*`, 'i');
  const match = prefix.exec(line);
  if (!match) return null;
  const rest = line.slice(match[0].length);

  // Without brackets the path is the first word (clients that omit them exist).
  if (!rest.startsWith('<')) return rest.split(/\s/)[0] ?? '';

  // With brackets: find the closing one, skipping quoted strings and escaped characters.
  let inQuotes = false;
  for (let index = 1; index < rest.length; index++) {
    const char = rest[index];
    if (char === '\\' && inQuotes) {
      index++;
      continue;
    }
    if (char === '"') inQuotes = !inQuotes;
    if (char === '>' && !inQuotes) return rest.slice(0, index + 1);
  }
  return rest;
}
