/*
 * Reading a YAML document node by node while keeping positions, for rule and test files.
 *
 * Every accessor reports problems into one list instead of throwing, so a file with five
 * mistakes produces five precise lines (file:line:column, what is wrong, what was expected)
 * in one pass. Unknown keys are problems, never silently ignored.
 */

import {
  isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap,
} from 'yaml';
import type { RuleProblem } from './errors';

export class YamlFile {
  readonly problems: RuleProblem[] = [];
  readonly root: Node | null;
  private readonly lines = new LineCounter();

  constructor(readonly file: string, text: string) {
    const doc = parseDocument(text, {
      lineCounter: this.lines, keepSourceTokens: true, uniqueKeys: true, prettyErrors: false,
    });
    for (const error of doc.errors) {
      const position = this.lines.linePos(error.pos[0]);
      this.problems.push({
        file, line: position.line, column: position.col,
        message: `YAML syntax: ${error.message.split('\n')[0] ?? error.code}`,
      });
    }
    this.root = doc.errors.length === 0 ? (doc.contents as Node | null) : null;
  }

  /** `file:line:column` of a node, for evidence and explain output. */
  where(node: Node | null | undefined): string {
    const { line, column } = this.position(node);
    return `${this.file}:${line}:${column}`;
  }

  position(node: Node | null | undefined): { line: number; column: number } {
    const offset = node?.range?.[0];
    if (offset === undefined) return { line: 0, column: 0 };
    const position = this.lines.linePos(offset);
    return { line: position.line, column: position.col };
  }

  problem(node: Node | null | undefined, message: string, expected?: string): void {
    const { line, column } = this.position(node);
    this.problems.push({
      file: this.file, line, column, message, ...(expected ? { expected } : {}),
    });
  }

  /** The pairs of a mapping, checking that every key is one of `allowed`. */
  map(
    node: Node | null | undefined, allowed: readonly string[], what: string,
  ): Map<string, Pair<Node, Node>> | null {
    const found = new Map<string, Pair<Node, Node>>();
    if (isAlias(node)) {
      this.problem(node, `aliases are not allowed in ${what}`, 'the value written out');
      return null;
    }
    if (!isMap(node)) {
      this.problem(node, `${what} is ${describe(node)}`, `a mapping (key: value) for ${what}`);
      return null;
    }
    for (const pair of (node as YAMLMap<Node, Node>).items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : null;
      if (key === null) {
        this.problem(pair.key as Node, `a key in ${what} is not a plain name`, 'a key such as id:');
        continue;
      }
      if (!allowed.includes(key)) {
        this.problem(pair.key as Node, `unknown key "${key}" in ${what}`,
          `one of ${allowed.join(', ')}`);
        continue;
      }
      found.set(key, pair as Pair<Node, Node>);
    }
    return found;
  }

  /** A mapping with exactly one key (a condition or an action): the key and its value. */
  single(
    node: Node | null | undefined, allowed: readonly string[], what: string,
  ): { key: string; value: Node | null; keyNode: Node } | null {
    if (!isMap(node)) {
      this.problem(node, `${what} is ${describe(node)}`,
        `a mapping with one key: ${allowed.join(', ')}`);
      return null;
    }
    const items = (node as YAMLMap<Node, Node>).items;
    if (items.length !== 1) {
      this.problem(node, `${what} has ${items.length} keys`,
        `exactly one of ${allowed.join(', ')} (combine several with all:)`);
      return null;
    }
    const pair = items[0] as Pair<Node, Node>;
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (!allowed.includes(key)) {
      this.problem(pair.key, `unknown ${what} "${key}"`, `one of ${allowed.join(', ')}`);
      return null;
    }
    return { key, value: pair.value ?? null, keyNode: pair.key };
  }

  string(
    node: Node | null | undefined, what: string, options: { allowEmpty?: boolean } = {},
  ): string | null {
    if (!isScalar(node) || (typeof node.value !== 'string' && typeof node.value !== 'number')) {
      this.problem(node, `${what} is ${describe(node)}`, `text for ${what}`);
      return null;
    }
    const text = String(node.value);
    if (!options.allowEmpty && text.trim() === '') {
      this.problem(node, `${what} is empty`, `non-empty text for ${what}`);
      return null;
    }
    return text;
  }

  boolean(node: Node | null | undefined, what: string): boolean | null {
    if (!isScalar(node) || typeof node.value !== 'boolean') {
      this.problem(node, `${what} is ${describe(node)}`, 'true or false');
      return null;
    }
    return node.value;
  }

  integer(node: Node | null | undefined, what: string, min: number, max: number): number | null {
    if (!isScalar(node) || typeof node.value !== 'number' || !Number.isInteger(node.value)
      || node.value < min || node.value > max) {
      this.problem(node, `${what} is ${describe(node)}`, `a whole number from ${min} to ${max}`);
      return null;
    }
    return node.value;
  }

  number(node: Node | null | undefined, what: string): number | null {
    if (!isScalar(node) || typeof node.value !== 'number' || !Number.isFinite(node.value)) {
      this.problem(node, `${what} is ${describe(node)}`, 'a number such as 5 or 7.5');
      return null;
    }
    return node.value;
  }

  /** A list of texts; a single text is accepted as a list of one. */
  strings(node: Node | null | undefined, what: string): Array<{ text: string; node: Node }> | null {
    if (isScalar(node)) {
      const text = this.string(node, what);
      return text === null ? null : [{ text, node }];
    }
    if (!isSeq(node)) {
      this.problem(node, `${what} is ${describe(node)}`, `text or a list of texts for ${what}`);
      return null;
    }
    const result: Array<{ text: string; node: Node }> = [];
    for (const item of node.items as Node[]) {
      const text = this.string(item, `an entry of ${what}`);
      if (text !== null) result.push({ text, node: item });
    }
    if (result.length === 0 && node.items.length === 0) {
      this.problem(node, `${what} is an empty list`, `at least one entry in ${what}`);
      return null;
    }
    return result;
  }

  sequence(node: Node | null | undefined, what: string): Node[] | null {
    if (!isSeq(node)) {
      this.problem(node, `${what} is ${describe(node)}`,
        `a list (lines starting with "- ") for ${what}`);
      return null;
    }
    return node.items as Node[];
  }
}

export function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'missing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isAlias(node)) return 'an alias';
  if (isScalar(node)) {
    if (node.value === null) return 'empty';
    if (typeof node.value === 'string') return `the text ${JSON.stringify(cut(node.value))}`;
    return `${typeof node.value} ${String(node.value)}`;
  }
  return 'not understood';
}

function cut(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}
