/**
 * The evaluator of parsed JSONPath templates (jsonpath.ts), with kubectl's output
 * rules and a size cap checked as the output grows.
 */
import { CniNodeError } from './errors.js';
import { show, type Literal, type Operand, type Operator, type Path, type Segment, type Selector, type TemplateNode } from './jsonpath-parse.js';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own enumerable property only: `.constructor` or `.__proto__` never reach the prototype. */
function child(v: unknown, name: string): unknown[] {
  if (!isRecord(v) || !Object.prototype.propertyIsEnumerable.call(v, name)) return [];
  const value = v[name];
  return value === undefined ? [] : [value];
}

function children(v: unknown): unknown[] {
  if (Array.isArray(v)) return v.filter((x) => x !== undefined);
  if (isRecord(v))
    return Object.keys(v)
      .map((k) => v[k])
      .filter((x) => x !== undefined);
  return [];
}

function sliceOf(list: readonly unknown[], s: { start: number | undefined; end: number | undefined; step: number }): unknown[] {
  const len = list.length;
  const clamp = (n: number): number => (n < 0 ? Math.max(0, n + len) : Math.min(n, len));
  const from = s.start === undefined ? 0 : clamp(s.start);
  const to = s.end === undefined ? len : clamp(s.end);
  const out: unknown[] = [];
  for (let i = from; i < to; i += s.step) if (list[i] !== undefined) out.push(list[i]);
  return out;
}

function select(v: unknown, sel: Selector): unknown[] {
  if (sel.t === 'key') return child(v, sel.name);
  if (!Array.isArray(v)) return [];
  if (sel.t === 'index') {
    const i = sel.n < 0 ? sel.n + v.length : sel.n;
    return i >= 0 && i < v.length && v[i] !== undefined ? [v[i]] : [];
  }
  return sliceOf(v, sel);
}

function isPrimitive(v: unknown): v is Literal {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

function compare(op: Operator, a: unknown, b: unknown): boolean {
  if (!isPrimitive(a) || !isPrimitive(b)) return op === '!=';
  if (op === '==') return a === b;
  if (op === '!=') return a !== b;
  const ordered = (typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string');
  if (!ordered) return false;
  const x = a as number | string;
  const y = b as number | string;
  return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y;
}

function operandValues(o: Operand, current: unknown): unknown[] {
  return o.t === 'literal' ? [o.value] : evalPath(o.path, [current]);
}

function evalSegment(seg: Segment, values: unknown[]): unknown[] {
  const out: unknown[] = [];
  switch (seg.t) {
    case 'field':
      for (const v of values) for (const c of child(v, seg.name)) out.push(c);
      return out;
    case 'wildcard':
      // No push(...list): a list of 100,000+ items would overflow the argument stack.
      for (const v of values) for (const c of children(v)) out.push(c);
      return out;
    case 'select':
      for (const v of values) for (const sel of seg.selectors) for (const c of select(v, sel)) out.push(c);
      return out;
    case 'recursive': {
      // Every container at or below each value, in document order; an object seen
      // twice (shared or cyclic) is visited once.
      const seen = new Set<object>();
      const walk = (v: unknown): void => {
        if (typeof v !== 'object' || v === null || seen.has(v)) return;
        seen.add(v);
        out.push(v);
        for (const c of children(v)) walk(c);
      };
      for (const v of values) walk(v);
      return out;
    }
    case 'filter':
      for (const v of values) {
        for (const item of children(v)) {
          const lefts = operandValues(seg.left, item);
          if (seg.op === undefined || seg.right === undefined) {
            if (lefts.length > 0) out.push(item);
            continue;
          }
          const rights = operandValues(seg.right, item);
          const op = seg.op;
          if (lefts.some((l) => rights.some((r) => compare(op, l, r)))) out.push(item);
        }
      }
      return out;
  }
}

function evalPath(path: Path, start: unknown[]): unknown[] {
  let values: unknown[] = start.filter((v) => v !== undefined);
  for (const seg of path) {
    if (values.length === 0) break;
    values = evalSegment(seg, values);
  }
  return values;
}

function format(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'object') {
    const text: unknown = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
    return typeof text === 'string' ? text : undefined;
  }
  return undefined; // undefined, functions, symbols: nothing to print
}

/** The output being built, with its size checked as it grows (see compileJsonPath's maxBytes). */
export class Output {
  readonly parts: string[] = [];
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly template: string,
  ) {}

  add(text: string): void {
    this.bytes += Buffer.byteLength(text);
    if (this.bytes > this.maxBytes) {
      throw new CniNodeError(
        'invalid',
        `JSONPath template ${show(this.template)} gives more than ${this.maxBytes} bytes on this object; the value is refused (the limit keeps a template from multiplying a large object)`,
      );
    }
    this.parts.push(text);
  }
}

export function run(nodes: readonly TemplateNode[], current: unknown, out: Output): void {
  for (const node of nodes) {
    switch (node.t) {
      case 'text':
        out.add(node.text);
        break;
      case 'literal':
        out.add(typeof node.value === 'string' ? node.value : JSON.stringify(node.value));
        break;
      case 'path': {
        let first = true;
        for (const v of evalPath(node.path, [current])) {
          const text = format(v);
          if (text === undefined) continue;
          out.add(first ? text : ` ${text}`);
          first = false;
        }
        break;
      }
      case 'range':
        for (const v of evalPath(node.path, [current])) run(node.body, v, out);
        break;
    }
  }
}
