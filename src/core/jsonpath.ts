import { CniNodeError, reason } from './errors.js';
import { Output, run } from './jsonpath-eval.js';
import { Parser, show, type TemplateNode } from './jsonpath-parse.js';

/**
 * kubectl-style JSONPath templates, for `kube-watch object … --jsonpath='{.data.plugins}'`.
 * Pure: compile once, evaluate against each version of the watched object.
 *
 * What is understood (what kubectl users write in practice):
 *  - literal text around `{…}` actions: `plugins={.data.plugins}`
 *  - `{}`, `{@}`, `{$}`, `{.}`: the whole (current) object
 *  - `.field`, `.a\.b` (escaped dot), `['field.with.dots']`, `["x"]`, `['a','b']`
 *  - `[n]` (negative counts from the end), `[start:end[:step]]`, `[*]`, `.*`, `[0,2]`
 *  - `..field` recursive descent
 *  - filters `[?(@.name=="x")]`, `!=`, `<`, `<=`, `>`, `>=` on strings, numbers,
 *    booleans and null, and existence `[?(@.ready)]`
 *  - `{range .items[*]}…{end}` (nested too), string literals `{"\n"}`, `{'text'}`
 *
 * Output is kubectl's: a string is printed raw, anything else as compact JSON
 * (null as `null`); several results of one action are joined by a single space.
 * A missing field, a wrong type or an index out of range yields nothing, never an
 * error (kubectl's allowMissingKeys). As in kubectl, `$` means the current object
 * (the range element inside a range).
 *
 * `compileJsonPath` throws a CniNodeError (kind 'invalid') naming the template and
 * the position of the problem; the evaluator it returns never throws anything but
 * a CniNodeError, whatever object it is given (an object that cannot be printed,
 * such as a cyclic one, is reported as a CniNodeError too).
 */

/**
 * Compiles a kubectl JSONPath template (`{.data.plugins}`, `{range .items[*]}{.metadata.name}{"\n"}{end}`).
 * The default kube-watch template `{}` prints the whole object as compact JSON.
 * The output is capped at `maxBytes` (default unlimited), checked as it is built:
 * a template can repeat a large object many times (nested ranges, `..`).
 */
export function compileJsonPath(template: string, opts: { maxBytes?: number } = {}): (obj: unknown) => string {
  let nodes: TemplateNode[];
  try {
    nodes = new Parser(String(template)).parseTemplate();
  } catch (e) {
    if (e instanceof CniNodeError) throw e;
    throw new CniNodeError('invalid', `invalid JSONPath template ${show(String(template))}: ${reason(e)}`);
  }
  const maxBytes = opts.maxBytes ?? Infinity;
  return (obj: unknown): string => {
    try {
      const out = new Output(maxBytes, template);
      run(nodes, obj, out);
      return out.parts.join('');
    } catch (e) {
      if (e instanceof CniNodeError) throw e;
      throw new CniNodeError('invalid', `JSONPath template ${show(template)} cannot be evaluated on this object: ${reason(e)}`, [], { cause: e });
    }
  };
}
