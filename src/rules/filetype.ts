/*
 * What an attachment really is: the true type from its first bytes (magic numbers), the files
 * inside a zip archive (read from its central directory), whether any of them is encrypted,
 * and whether an Office document carries macros.
 *
 * Input is untrusted bytes from the message: every offset is bounds-checked, archive entries
 * are capped at MAX_ZIP_ENTRIES, and only the first bytes of a member are inflated (to learn
 * its type) unless it is itself a zip (inflated up to MAX_NESTED_ZIP_BYTES, one level deep).
 *
 * LIMITATION: only zip archives are opened; rar, 7z, gzip/tar and ISO images are recognised
 * by type but their contents are not listed. Zip64 archives are listed from the classic
 * directory only. A corrupt directory lists what could be read and marks the archive `broken`.
 * LIMITATION: macros in legacy OLE files (.doc, .xls) are found by looking for the names of
 * the VBA storages (`_VBA_PROJECT`, `Macros`, `_VBA_PROJECT_CUR`) encoded as UTF-16 anywhere in
 * the file, not by walking the OLE directory; a file that mentions those names in its text in
 * UTF-16 would be flagged too. OOXML macros are found by the `vbaProject.bin` member; macros
 * in OpenDocument files (Basic/ folder) are found by the member name too.
 */

import { constants, inflateRawSync } from 'node:zlib';

export const TRUE_TYPES = [
  'exe', 'elf', 'macho', 'zip', 'rar', '7z', 'gzip', 'bzip2', 'xz', 'cab', 'pdf', 'ole',
  'ooxml', 'odf', 'rtf', 'png', 'jpeg', 'gif', 'bmp', 'tiff', 'webp', 'iso', 'script', 'lnk',
  'html', 'text', 'unknown',
] as const;
export type TrueType = (typeof TRUE_TYPES)[number];

export const MAX_ZIP_ENTRIES = 2000;
export const MAX_NESTED_ZIP_BYTES = 10 * 1024 * 1024;
const SNIFF_BYTES = 512;

function startsWith(bytes: Buffer, magic: number[], offset = 0): boolean {
  if (bytes.length < offset + magic.length) return false;
  return magic.every((value, index) => bytes[offset + index] === value);
}

/** The type from the first bytes; `zip` is refined to `ooxml` or `odf` by sniffZipKind. */
export function sniffType(bytes: Buffer): TrueType {
  if (startsWith(bytes, [0x4d, 0x5a])) return 'exe';
  if (startsWith(bytes, [0x7f, 0x45, 0x4c, 0x46])) return 'elf';
  if (startsWith(bytes, [0xcf, 0xfa, 0xed, 0xfe]) || startsWith(bytes, [0xce, 0xfa, 0xed, 0xfe])
    || startsWith(bytes, [0xca, 0xfe, 0xba, 0xbe])) return 'macho';
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])
    || startsWith(bytes, [0x50, 0x4b, 0x05, 0x06])) return 'zip';
  if (startsWith(bytes, [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07])) return 'rar';
  if (startsWith(bytes, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return '7z';
  if (startsWith(bytes, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(bytes, [0x42, 0x5a, 0x68])) return 'bzip2';
  if (startsWith(bytes, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (startsWith(bytes, [0x4d, 0x53, 0x43, 0x46])) return 'cab';
  if (bytes.subarray(0, 1024).includes('%PDF-')) return 'pdf';
  if (startsWith(bytes, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return 'ole';
  if (startsWith(bytes, [0x7b, 0x5c, 0x72, 0x74, 0x66])) return 'rtf';
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47])) return 'png';
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(bytes, [0x47, 0x49, 0x46, 0x38])) return 'gif';
  if (startsWith(bytes, [0x42, 0x4d]) && bytes.length > 14) return 'bmp';
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00])
    || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  if (startsWith(bytes, [0x52, 0x49, 0x46, 0x46])
    && startsWith(bytes, [0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  if (startsWith(bytes, [0x4c, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00])) return 'lnk';
  if (bytes.length > 0x8005
    && bytes.subarray(0x8001, 0x8006).toString('latin1') === 'CD001') return 'iso';
  const head = bytes.subarray(0, SNIFF_BYTES).toString('latin1');
  if (head.startsWith('#!')) return 'script';
  if (/^\s*(<!doctype html|<html|<head|<body|<script)/i.test(head)) return 'html';
  if (head.length > 0 && !/[\x00-\x08\x0e-\x1a\x1c-\x1f]/.test(head)) return 'text';
  return 'unknown';
}

export interface ArchiveMember {
  name: string;
  size: number;
  encrypted: boolean;
  /** From the member's first bytes when they could be read; else from nothing: `unknown`. */
  trueType: TrueType;
  /** The zip this member came from, for nested archives `outer.zip/inner.zip`. */
  archive: string;
}

export interface ZipListing {
  members: ArchiveMember[];
  /** The directory could not be read completely. */
  broken: boolean;
}

/** Lists a zip archive from its central directory; nested zips are listed one level deep. */
export function listZip(bytes: Buffer, archiveName: string, depth = 0): ZipListing {
  const members: ArchiveMember[] = [];
  const end = findEndOfDirectory(bytes);
  if (end < 0) return { members, broken: true };

  const count = bytes.readUInt16LE(end + 10);
  let offset = bytes.readUInt32LE(end + 16);
  let broken = false;
  for (let index = 0; index < count && index < MAX_ZIP_ENTRIES; index++) {
    if (offset + 46 > bytes.length || bytes.readUInt32LE(offset) !== 0x02014b50) {
      broken = true;
      break;
    }
    const flags = bytes.readUInt16LE(offset + 8);
    const method = bytes.readUInt16LE(offset + 10);
    const compressedSize = bytes.readUInt32LE(offset + 20);
    const size = bytes.readUInt32LE(offset + 24);
    const nameLength = bytes.readUInt16LE(offset + 28);
    const extraLength = bytes.readUInt16LE(offset + 30);
    const commentLength = bytes.readUInt16LE(offset + 32);
    const localOffset = bytes.readUInt32LE(offset + 42);
    const nameBytes = bytes.subarray(offset + 46, offset + 46 + nameLength);
    // Bit 11 says UTF-8; otherwise the name is in the DOS code page, read here as latin1.
    const name = nameBytes.toString((flags & 0x800) !== 0 ? 'utf8' : 'latin1');
    const encrypted = (flags & 0x1) !== 0;
    offset += 46 + nameLength + extraLength + commentLength;
    if (name.endsWith('/')) continue;

    const data = encrypted ? null : memberData(bytes, localOffset, compressedSize);
    const head = data ? memberHead(data, method, SNIFF_BYTES) : null;
    const trueType = head ? sniffType(head) : 'unknown';
    members.push({ name, size, encrypted, trueType, archive: archiveName });

    // One level of nesting: a zip inside the zip is listed too.
    if (trueType === 'zip' && depth === 0 && data && size <= MAX_NESTED_ZIP_BYTES) {
      const inner = memberHead(data, method, MAX_NESTED_ZIP_BYTES);
      if (inner) {
        const nested = listZip(inner, `${archiveName}/${name}`, depth + 1);
        members.push(...nested.members);
        broken ||= nested.broken;
      }
    }
  }
  return { members, broken };
}

/** Where the end-of-central-directory record starts, searching back over a comment. */
function findEndOfDirectory(bytes: Buffer): number {
  const lowest = Math.max(0, bytes.length - 22 - 0xffff);
  for (let offset = bytes.length - 22; offset >= lowest; offset--) {
    if (bytes.readUInt32LE(offset) === 0x06054b50) return offset;
  }
  return -1;
}

function memberData(bytes: Buffer, localOffset: number, compressedSize: number): Buffer | null {
  if (localOffset + 30 > bytes.length || bytes.readUInt32LE(localOffset) !== 0x04034b50) {
    return null;
  }
  const start = localOffset + 30 + bytes.readUInt16LE(localOffset + 26)
    + bytes.readUInt16LE(localOffset + 28);
  if (start > bytes.length) return null;
  return bytes.subarray(start, Math.min(bytes.length, start + compressedSize));
}

/** Up to `limit` bytes of a member: stored as is, or inflated only as far as needed. */
function memberHead(data: Buffer, method: number, limit: number): Buffer | null {
  if (method === 0) return data.subarray(0, limit);
  if (method !== 8) return null;
  try {
    const input = limit <= SNIFF_BYTES ? data.subarray(0, 4096) : data;
    return inflateRawSync(input, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: limit })
      .subarray(0, limit);
  } catch {
    return null;
  }
}

/** ooxml (Word, Excel, PowerPoint 2007+) and odf are zips recognised by their members. */
export function refineZipType(members: ArchiveMember[]): TrueType {
  const names = new Set(members.map((member) => member.name));
  if (names.has('[Content_Types].xml')) return 'ooxml';
  if (names.has('mimetype') && names.has('META-INF/manifest.xml')) return 'odf';
  return 'zip';
}

const OLE_MACRO_NAMES = ['_VBA_PROJECT', 'Macros', '_VBA_PROJECT_CUR']
  .map((name) => Buffer.from(name, 'utf16le'));

/** Whether an Office document carries macros (see LIMITATION above); `content` is read only
 * for OLE documents, whose macros are found in the bytes. */
export function hasMacros(
  content: () => Buffer, trueType: TrueType, members: ArchiveMember[],
): boolean {
  if (trueType === 'ooxml') {
    return members.some((member) => /(^|\/)vbaProject\.bin$/i.test(member.name));
  }
  if (trueType === 'odf') return members.some((member) => /^Basic\//.test(member.name));
  if (trueType !== 'ole') return false;
  const bytes = content();
  return OLE_MACRO_NAMES.some((name) => bytes.includes(name));
}

/*
 * Which file name extensions and declared MIME types fit each true type. An extension or a
 * declared type that belongs to another type is a mismatch; generic declarations
 * (application/octet-stream) and types not listed here are never a mismatch.
 */
const FITS: Partial<Record<TrueType, { extensions: string[]; mime: RegExp }>> = {
  exe: { extensions: ['exe', 'dll', 'scr', 'com', 'sys', 'cpl', 'ocx', 'drv', 'efi', 'msi', 'mui'],
    mime: new RegExp('^application\\/(x-msdownload|x-dosexec|x-msdos-program'
      + '|vnd\\.microsoft\\.portable-executable|x-ms-installer|x-executable)$') },
  elf: { extensions: ['so', 'elf', 'o', 'axf'],
    mime: /^application\/(x-executable|x-elf|x-sharedlib)$/ },
  zip: { extensions: ['zip', 'jar', 'apk', 'xpi', 'epub', 'kmz', 'whl', 'nupkg', 'vsix'],
    mime: new RegExp('^application\\/(zip|x-zip-compressed|x-zip|java-archive|epub\\+zip'
      + '|vnd\\.android\\.package-archive)$') },
  ooxml: { extensions: ['docx', 'docm', 'dotx', 'dotm', 'xlsx', 'xlsm', 'xltx', 'xltm', 'xlsb',
    'pptx', 'pptm', 'potx', 'ppsx', 'ppsm', 'vsdx'],
    mime: new RegExp('^application\\/(vnd\\.openxmlformats-officedocument\\..+'
      + '|vnd\\.ms-[a-z]+\\.[a-z.]*macroenabled\\.12'
      + '|vnd\\.ms-excel\\.sheet\\.binary\\.macroenabled\\.12|zip)$', 'i') },
  odf: { extensions: ['odt', 'ods', 'odp', 'odg', 'ott', 'ots'],
    mime: /^application\/vnd\.oasis\.opendocument\..+$/ },
  ole: { extensions: ['doc', 'dot', 'xls', 'xlt', 'ppt', 'pps', 'pot', 'msg', 'msi', 'vsd', 'pub',
    'mpp'],
    mime: /^application\/(msword|vnd\.ms-[a-z.-]+|x-msi|vnd\.visio|x-ole-storage)$/ },
  pdf: { extensions: ['pdf'], mime: /^application\/(pdf|x-pdf)$/ },
  rtf: { extensions: ['rtf', 'doc'], mime: /^(application|text)\/(rtf|msword)$/ },
  png: { extensions: ['png'], mime: /^image\/png$/ },
  jpeg: { extensions: ['jpg', 'jpeg', 'jpe', 'jfif'], mime: /^image\/(jpeg|pjpeg)$/ },
  gif: { extensions: ['gif'], mime: /^image\/gif$/ },
  bmp: { extensions: ['bmp'], mime: /^image\/(bmp|x-bmp|x-ms-bmp)$/ },
  tiff: { extensions: ['tif', 'tiff'], mime: /^image\/tiff$/ },
  webp: { extensions: ['webp'], mime: /^image\/webp$/ },
  rar: { extensions: ['rar'], mime: /^application\/(x-rar-compressed|vnd\.rar|x-rar)$/ },
  '7z': { extensions: ['7z'], mime: /^application\/x-7z-compressed$/ },
  gzip: { extensions: ['gz', 'tgz'], mime: /^application\/(gzip|x-gzip|x-compressed-tar)$/ },
  cab: { extensions: ['cab'], mime: /^application\/vnd\.ms-cab-compressed$/ },
  lnk: { extensions: ['lnk'], mime: /^application\/x-ms-shortcut$/ },
  iso: { extensions: ['iso', 'img'], mime: /^application\/(x-iso9660-image|x-cd-image)$/ },
};

/** Extensions that are known to belong to some type, so using them for another is a lie. */
const KNOWN_EXTENSIONS = new Set(Object.values(FITS)
  .flatMap((fit) => fit?.extensions ?? []).filter(Boolean)
  .concat(['txt', 'csv', 'htm', 'html', 'xml', 'json', 'eml', 'ics', 'vcf']));

export function extensionOf(fileName: string): string {
  const base = fileName.split(/[\\/]/).pop() ?? '';
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot + 1).toLowerCase();
}

/** True when the name's extension or the declared MIME type contradicts the true type. */
export function typeMismatch(fileName: string, declaredType: string, trueType: TrueType): boolean {
  const fit = FITS[trueType];
  if (!fit) return false;
  const extension = extensionOf(fileName);
  if (extension !== '' && KNOWN_EXTENSIONS.has(extension)
    && !fit.extensions.includes(extension)) return true;
  if (extension !== '' && !KNOWN_EXTENSIONS.has(extension)
    && ['exe', 'elf', 'macho'].includes(trueType)) return true;
  const declared = declaredType.toLowerCase();
  if (declared === '' || declared === 'application/octet-stream'
    || declared === 'application/x-download' || declared === 'application/force-download'
    || declared === 'binary/octet-stream') return false;
  return !fit.mime.test(declared);
}

const RISKY_EXTENSIONS = new Set([
  'exe', 'scr', 'com', 'bat', 'cmd', 'pif', 'vbs', 'vbe', 'js', 'jse', 'wsf', 'wsh', 'hta',
  'msi', 'cpl', 'jar', 'ps1', 'lnk', 'reg', 'dll', 'iso', 'img',
]);

/** `invoice.pdf.exe`, `scan.doc .js`: a harmless-looking extension hiding a risky one. */
export function hasDoubleExtension(fileName: string): boolean {
  const base = (fileName.split(/[\\/]/).pop() ?? '').toLowerCase();
  const parts = base.split('.').map((part) => part.trim());
  if (parts.length < 3) return false;
  const last = parts.at(-1) ?? '';
  const previous = parts.at(-2) ?? '';
  return RISKY_EXTENSIONS.has(last) && /^[a-z0-9]{2,4}$/.test(previous)
    && !RISKY_EXTENSIONS.has(previous);
}
