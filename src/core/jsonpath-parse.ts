/**
 * The parser of kubectl-style JSONPath templates (jsonpath.ts): text → a tree of
 * template nodes, or a CniNodeError naming the position of the problem.
 */
import { CniNodeError } from './errors.js';

export type Literal = string | number | boolean | null;

export type Selector =
  { t: 'index'; n: number } | { t: 'slice'; start: number | undefined; end: number | undefined; step: number } | { t: 'key'; name: string };

export type Segment =
  | { t: 'field'; name: string }
  | { t: 'wildcard' }
  | { t: 'recursive' }
  | { t: 'select'; selectors: Selector[] }
  | { t: 'filter'; left: Operand; op: Operator | undefined; right: Operand | undefined };

export type Path = Segment[];
export type Operand = { t: 'path'; path: Path } | { t: 'literal'; value: Literal };
export type Operator = '==' | '!=' | '<' | '<=' | '>' | '>=';

export type TemplateNode =
  { t: 'text'; text: string } | { t: 'literal'; value: Literal } | { t: 'path'; path: Path } | { t: 'range'; path: Path; body: TemplateNode[] };

const MAX_NESTING = 64;
const WHITESPACE = new Set([' ', '\t', '\r', '\n']);
// Characters that end a field name written after `.` (a `\` escapes any of them).
const TERMINATORS = new Set([...WHITESPACE, '.', ',', '[', ']', '$', '@', '{', '}', '(', ')', '=', '!', '<', '>', '~']);
const IDENTIFIER = /^[\p{L}_][\p{L}\p{N}_]*/u;
const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;

export function show(template: string): string {
  const text = template.length > 120 ? `${template.slice(0, 120)}…` : template;
  return JSON.stringify(text);
}

export class Parser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly src: string) {}

  fail(what: string, at: number = this.pos): never {
    const where = Math.min(Math.max(at, 0), this.src.length);
    const lineStart = this.src.lastIndexOf('\n', where - 1) + 1;
    const nl = this.src.indexOf('\n', where);
    const lineEnd = nl === -1 ? this.src.length : nl;
    const from = Math.max(lineStart, where - 40);
    const to = Math.min(lineEnd, where + 40);
    const excerpt = `${from > lineStart ? '…' : ''}${this.src.slice(from, to)}${to < lineEnd ? '…' : ''}`;
    const caret = `${' '.repeat(where - from + (from > lineStart ? 1 : 0))}^`;
    throw new CniNodeError('invalid', `invalid JSONPath template ${show(this.src)} at position ${where + 1}: ${what}`, [`${excerpt}\n    ${caret}`]);
  }

  private peek(offset = 0): string {
    return this.src.charAt(this.pos + offset);
  }

  private startsWith(s: string): boolean {
    return this.src.startsWith(s, this.pos);
  }

  private skipSpace(): void {
    while (WHITESPACE.has(this.peek())) this.pos++;
  }

  private describe(ch: string): string {
    return ch === '' ? 'end of template' : `${JSON.stringify(ch)}`;
  }

  parseTemplate(): TemplateNode[] {
    const root: TemplateNode[] = [];
    // Open ranges: where their body goes, and where each began (for errors).
    const stack: { body: TemplateNode[]; at: number }[] = [];
    let out = root;
    while (this.pos < this.src.length) {
      const open = this.src.indexOf('{', this.pos);
      if (open === -1) {
        out.push({ t: 'text', text: this.src.slice(this.pos) });
        break;
      }
      if (open > this.pos) out.push({ t: 'text', text: this.src.slice(this.pos, open) });
      this.pos = open + 1;
      this.skipSpace();
      const found = IDENTIFIER.exec(this.src.slice(this.pos, this.pos + 64))?.[0];
      // `range(`/`end(` fall through to parseAction, which reports an unknown function.
      const word = found !== undefined && this.src.charAt(this.pos + found.length) !== '(' ? found : undefined;
      if (word === 'range') {
        this.pos += 5;
        this.skipSpace();
        const path = this.parsePath(false);
        this.closeAction(open);
        const node: TemplateNode = { t: 'range', path, body: [] };
        out.push(node);
        stack.push({ body: out, at: open });
        out = node.body;
      } else if (word === 'end') {
        this.pos += 3;
        this.closeAction(open);
        const frame = stack.pop();
        if (!frame) this.fail('{end} without a matching {range …}', open);
        out = frame.body;
      } else {
        out.push(this.parseAction());
        this.closeAction(open);
      }
    }
    const unclosed = stack.pop();
    if (unclosed) this.fail('{range …} has no matching {end}', unclosed.at);
    return root;
  }

  private closeAction(open: number): void {
    this.skipSpace();
    if (this.peek() === '}') {
      this.pos++;
      return;
    }
    if (this.pos >= this.src.length) this.fail('unclosed "{" (no matching "}")', open);
    this.fail(`unexpected ${this.describe(this.peek())} in {…}`);
  }

  /** The content of one `{…}`: a path, a string/number/boolean literal. */
  private parseAction(): TemplateNode {
    const operand = this.parseOperand(false);
    return operand.t === 'literal' ? { t: 'literal', value: operand.value } : { t: 'path', path: operand.path };
  }

  private parseOperand(inFilter: boolean): Operand {
    const ch = this.peek();
    if (ch === '"' || ch === "'") return { t: 'literal', value: this.parseString() };
    if (/[+\-\d]/.test(ch)) {
      const m = NUMBER.exec(this.src.slice(this.pos, this.pos + 400));
      if (!m) this.fail(`bad number`);
      const value = Number(m[0]);
      if (!Number.isFinite(value)) this.fail(`bad number ${m[0]}`);
      this.pos += m[0].length;
      return { t: 'literal', value };
    }
    const word = IDENTIFIER.exec(this.src.slice(this.pos, this.pos + 256))?.[0];
    if (word !== undefined) {
      const after = this.src.charAt(this.pos + word.length);
      if (after === '(') this.fail(`unknown function ${word}(); JSONPath templates have no functions`);
      if (word === 'true' || word === 'false' || word === 'null') {
        this.pos += word.length;
        return { t: 'literal', value: word === 'null' ? null : word === 'true' };
      }
      if (word === 'range' || word === 'end') this.fail(`"${word}" must be alone at the start of its own {…}`);
      this.fail(`unknown identifier "${word}"; a path starts with "." (e.g. {.${word}})${inFilter ? ' or "@."' : ''}`);
    }
    return { t: 'path', path: this.parsePath(inFilter) };
  }

  /** `$`/`@` then `.field`, `..field`, `[…]` segments; stops at anything else. */
  private parsePath(inFilter: boolean): Path {
    const path: Path = [];
    if (this.peek() === '$' || this.peek() === '@') this.pos++;
    for (;;) {
      const ch = this.peek();
      if (this.startsWith('..')) {
        const at = this.pos;
        this.pos += 2;
        path.push({ t: 'recursive' });
        const next = this.peek();
        if (next === '[') this.parseBracket(path);
        else if (next === '*') {
          this.pos++;
          path.push({ t: 'wildcard' });
        } else {
          const name = this.parseName();
          if (name === '') this.fail('".." must be followed by a field name, "*" or "[…]"', at);
          path.push({ t: 'field', name });
        }
      } else if (ch === '.') {
        this.pos++;
        if (this.peek() === '*' && (this.pos + 1 >= this.src.length || TERMINATORS.has(this.peek(1)))) {
          this.pos++;
          path.push({ t: 'wildcard' });
          continue;
        }
        const name = this.parseName();
        // `{.}` is the current object; an empty name adds nothing.
        if (name !== '') path.push({ t: 'field', name });
        if (this.peek() === '(') this.fail(name === '' ? 'unexpected "("' : `unknown function ${name}(); JSONPath templates have no functions`);
      } else if (ch === '[') {
        this.parseBracket(path);
      } else if (ch === '(' && !inFilter) {
        this.fail('unexpected "("; JSONPath templates have no functions');
      } else {
        return path;
      }
    }
  }

  /** A field name after `.`: up to the next unescaped terminator. */
  private parseName(): string {
    let name = '';
    while (this.pos < this.src.length) {
      const ch = this.peek();
      if (ch === '\\') {
        if (this.pos + 1 >= this.src.length) this.fail('"\\" at the end of a field name escapes nothing');
        name += this.peek(1);
        this.pos += 2;
        continue;
      }
      if (TERMINATORS.has(ch)) break;
      name += ch;
      this.pos++;
    }
    return name;
  }

  private parseBracket(path: Path): void {
    const open = this.pos;
    this.pos++; // [
    this.skipSpace();
    if (this.peek() === '?') {
      this.pos++;
      this.skipSpace();
      if (this.peek() !== '(') this.fail('a filter is written [?(…)]');
      this.pos++;
      path.push(this.parseFilter(open));
      this.skipSpace();
      if (this.peek() !== ']')
        this.fail(this.pos >= this.src.length ? 'unterminated "["' : `expected "]" after the filter, found ${this.describe(this.peek())}`);
      this.pos++;
      return;
    }
    if (this.peek() === '*') {
      this.pos++;
      this.skipSpace();
      if (this.peek() !== ']') this.fail(this.pos >= this.src.length ? 'unterminated "["' : `"[*]" takes nothing else, found ${this.describe(this.peek())}`);
      this.pos++;
      path.push({ t: 'wildcard' });
      return;
    }
    const selectors: Selector[] = [];
    for (;;) {
      this.skipSpace();
      selectors.push(this.parseSelector(open));
      this.skipSpace();
      const ch = this.peek();
      if (ch === ',') {
        this.pos++;
        continue;
      }
      if (ch === ']') {
        this.pos++;
        break;
      }
      if (ch === '') this.fail('unterminated "["', open);
      this.fail(`unexpected ${this.describe(ch)} in […]; expected an index, a slice a:b, a quoted key, "*" or ?(…)`);
    }
    path.push({ t: 'select', selectors });
  }

  private parseSelector(open: number): Selector {
    const ch = this.peek();
    if (ch === '"' || ch === "'") return { t: 'key', name: this.parseString() };
    const start = this.pos;
    while (/[0-9:+-]/.test(this.peek())) this.pos++;
    const text = this.src.slice(start, this.pos);
    if (text === '') {
      if (ch === '') this.fail('unterminated "["', open);
      if (ch === ']') this.fail('empty "[]"; write an index, a slice a:b, a quoted key or "*"', open);
      this.fail(`unexpected ${this.describe(ch)} in […]; a key with other characters is written ['key']`);
    }
    const parts = text.split(':');
    if (parts.length > 3) this.fail(`bad slice "${text}"; the form is [start:end:step]`, start);
    const nums = parts.map((p) => {
      if (p === '') return undefined;
      if (!INTEGER.test(p)) this.fail(`"${p}" is not an integer`, start);
      const n = Number(p);
      if (!Number.isSafeInteger(n)) this.fail(`index ${p} is too large`, start);
      return n;
    });
    if (parts.length === 1) return { t: 'index', n: nums[0] as number };
    const step = nums[2] ?? 1;
    if (step <= 0) this.fail(`slice step must be greater than 0 (got ${step})`, start);
    return { t: 'slice', start: nums[0], end: nums[1], step };
  }

  private parseFilter(open: number): Segment {
    if (++this.depth > MAX_NESTING) this.fail(`filters nested more than ${MAX_NESTING} deep`);
    this.skipSpace();
    const left = this.parseOperand(true);
    if (left.t === 'path' && left.path.length === 0 && this.peek() !== ')' && !/[=!<>~]/.test(this.peek()))
      this.fail(`unexpected ${this.describe(this.peek())} in a filter; write e.g. [?(@.name=="x")]`);
    this.skipSpace();
    let op: Operator | undefined;
    let right: Operand | undefined;
    const m = /^(==|!=|<=|>=|=~|<|>|=)/.exec(this.src.slice(this.pos, this.pos + 2));
    if (m) {
      const at = this.pos;
      const found = m[0];
      if (found === '=~') this.fail('the regular-expression operator =~ is not supported; use == or !=', at);
      if (found === '=') this.fail('"=" is not a comparison; write "=="', at);
      op = found as Operator;
      this.pos += found.length;
      this.skipSpace();
      right = this.parseOperand(true);
      if (right.t === 'path' && right.path.length === 0 && !/[@$]/.test(this.src.charAt(this.pos - 1))) this.fail(`expected a value after ${found}`);
      this.skipSpace();
    }
    if (this.peek() !== ')') {
      if (this.pos >= this.src.length) this.fail('unterminated filter "[?("', open);
      this.fail(`unexpected ${this.describe(this.peek())} in a filter; supported: == != < <= > >=`);
    }
    this.pos++;
    this.depth--;
    return { t: 'filter', left, op, right };
  }

  /** A quoted string with Go-style escapes (as kubectl's UnquoteExtend). */
  private parseString(): string {
    const quote = this.peek();
    const open = this.pos;
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= this.src.length) this.fail(`unterminated string (no closing ${quote})`, open);
      const ch = this.peek();
      if (ch === quote) {
        this.pos++;
        return out;
      }
      if (ch !== '\\') {
        out += ch;
        this.pos++;
        continue;
      }
      const esc = this.peek(1);
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v', a: '\x07', '\\': '\\', '"': '"', "'": "'" };
      if (Object.hasOwn(simple, esc)) {
        out += simple[esc];
        this.pos += 2;
        continue;
      }
      const hexLength = esc === 'x' ? 2 : esc === 'u' ? 4 : esc === 'U' ? 8 : 0;
      if (hexLength > 0) {
        const hex = this.src.slice(this.pos + 2, this.pos + 2 + hexLength);
        const code = /^[0-9a-fA-F]+$/.test(hex) && hex.length === hexLength ? parseInt(hex, 16) : NaN;
        if (!(code <= 0x10ffff)) this.fail(`bad escape \\${esc}${hex}`);
        out += String.fromCodePoint(code);
        this.pos += 2 + hexLength;
        continue;
      }
      this.fail(esc === '' ? `unterminated string (no closing ${quote})` : `unknown escape \\${esc} in a string`);
    }
  }
}

// ---- evaluation ------------------------------------------------------------------
