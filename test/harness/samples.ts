/*
 * Test payloads that scanners recognise: the EICAR anti-virus test string, the GTUBE anti-spam
 * test string, Moat's own clamd marker, and builders that hide them in a MIME attachment or a
 * zip file.
 *
 * EICAR and GTUBE are assembled at run time from two halves, so no source or compiled file in
 * this repository is itself flagged by a virus scanner on a developer's machine.
 *
 * The clamd signatures that match EICAR_STRING and CLAMAV_MARKER live in
 * test/fixtures/clamav/moat-test.ndb (names Moat.Test.EICAR and Moat.Test.Marker).
 */

import { crc32, deflateRawSync } from 'node:zlib';

/** The 68-byte EICAR test string. */
export const EICAR_STRING =
  'X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

/** The GTUBE string; SpamAssassin gives it about 1000 points. */
export const GTUBE_STRING =
  'XJS*C4JDBQADN1.NSBN3*2IDNEN*' + 'GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/** Matched by the fixture signature Moat.Test.Marker. */
export const CLAMAV_MARKER = 'MOAT-CLAMAV-TEST-MARKER-7Q2X9';

/*
 * The names clamd reports. It appends `.UNOFFICIAL` to every signature that does not come from
 * the official ClamAV databases, so the fixture's Moat.Test.EICAR is reported under this name.
 */
export const CLAMAV_EICAR_NAME = 'Moat.Test.EICAR.UNOFFICIAL';
export const CLAMAV_MARKER_NAME = 'Moat.Test.Marker.UNOFFICIAL';

export interface SimpleMessage {
  from?: string;
  to?: string;
  subject?: string;
  messageId?: string;
  body?: string;
}

const HEADER_DEFAULTS = {
  from: 'sender@example.org',
  to: 'user@example.com',
  subject: 'Harness test message',
  messageId: '<harness-test@example.org>',
};

/**
 * `now` as an RFC 5322 date. Test messages carry the time they are built: spamd scores a Date
 * a day or more away from its clock (DATE_IN_PAST_24_48, DATE_IN_FUTURE_48_96...), so a fixed
 * date made a message's score, and the tests that read it, change with the calendar.
 */
export function messageDate(now = new Date()): string {
  return now.toUTCString().replace(/GMT$/, '+0000');
}

/** `message` (a stored fixture) with its Date header set to now. */
export function withCurrentDate(message: string): string {
  return message.replace(/^Date: [^\r\n]*/m, `Date: ${messageDate()}`);
}

function headerBlock(message: SimpleMessage, extra: string[] = []): string[] {
  return [
    `From: <${message.from ?? HEADER_DEFAULTS.from}>`,
    `To: <${message.to ?? HEADER_DEFAULTS.to}>`,
    `Subject: ${message.subject ?? HEADER_DEFAULTS.subject}`,
    `Message-ID: ${message.messageId ?? HEADER_DEFAULTS.messageId}`,
    `Date: ${messageDate()}`,
    'MIME-Version: 1.0',
    ...extra,
  ];
}

/** A plain-text message with CRLF line ends. */
export function plainMessage(message: SimpleMessage = {}): string {
  const body = message.body ?? 'Hello,\r\n\r\nthis is an ordinary test message.\r\n';
  const headers = headerBlock(message, ['Content-Type: text/plain; charset=us-ascii']);
  return `${headers.join('\r\n')}\r\n\r\n${body}`;
}

/** Base64 in 76-column lines, CRLF separated. */
function base64Lines(content: Buffer): string {
  return (content.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

/** A multipart/mixed message: a text part plus one base64 attachment. */
export function messageWithAttachment(
  fileName: string,
  content: Buffer,
  contentType = 'application/octet-stream',
  message: SimpleMessage = {},
): string {
  const boundary = '----=_MoatHarness_0123456789';
  const headers = headerBlock(message, [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
  ]);
  return [
    ...headers,
    '',
    'This is a multi-part message in MIME format.',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    message.body ?? 'Please find the file attached.',
    `--${boundary}`,
    `Content-Type: ${contentType}; name="${fileName}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${fileName}"`,
    '',
    base64Lines(content),
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

/**
 * A zip archive of the given files, deflated (so the content does not appear as is in the
 * archive and a scanner must open it) unless `stored` is asked for. Written by hand from the
 * PKWARE APPNOTE layout: local headers, central directory, end record.
 */
export function zipArchive(
  files: Array<{ name: string; content: Buffer }>,
  options: { stored?: boolean } = {},
): Buffer {
  const method = options.stored ? 0 : 8;
  const versionNeeded = options.stored ? 10 : 20;
  const localParts: Buffer[] = [];
  const centralParts: Buffer[] = [];
  let offset = 0;

  for (const file of files) {
    const name = Buffer.from(file.name, 'utf8');
    const checksum = crc32(file.content);
    const size = file.content.length;
    const data = options.stored ? file.content : deflateRawSync(file.content);

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); // local file header signature
    local.writeUInt16LE(versionNeeded, 4);
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10); // time
    local.writeUInt16LE(0x21, 12); // date: 1980-01-01
    local.writeUInt32LE(checksum, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28); // extra length
    localParts.push(local, name, data);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0); // central directory header signature
    central.writeUInt16LE(20, 4); // version made by
    central.writeUInt16LE(versionNeeded, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(checksum, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    // extra length, comment length, disk start, internal attributes, external attributes: 0
    central.writeUInt32LE(offset, 42);
    centralParts.push(central, name);

    offset += local.length + name.length + data.length;
  }

  const centralDirectory = Buffer.concat(centralParts);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); // end of central directory signature
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralDirectory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...localParts, centralDirectory, end]);
}
