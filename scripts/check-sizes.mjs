// Part of `npm run lint`: no source file over 400 lines and no function over 80,
// so that every unit fits in a reader's head. A file or function may be longer
// only when a comment says why it must be:
//   - a file: a line `// size: <why>` among its first 40 lines;
//   - a function: a comment `// size: <why>` (or `size: <why>` in its JSDoc) right
//     above it.
// Counted: physical lines from the first to the last line of the node, comments
// and blank lines inside included (what a reader has to scroll through).
//
//   node scripts/check-sizes.mjs [dir…]   (default: src)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export const MAX_FILE_LINES = 400;
export const MAX_FUNCTION_LINES = 80;
const EXCEPTION = /\bsize:\s*\S/;

function sourceFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

function functionName(node, sf) {
  if (node.name) return node.name.getText(sf);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) && parent.name) {
    return parent.name.getText(sf);
  }
  return '(anonymous)';
}

/** The comments right above a node, or above the statement that holds it (`const f = () => …`). */
function leadingComments(node, sf) {
  const text = sf.getFullText();
  const holders = [node];
  for (let p = node.parent; p && !ts.isSourceFile(p) && !ts.isBlock(p) && !ts.isClassLike(p) && !ts.isObjectLiteralExpression(p); p = p.parent) holders.push(p);
  return holders
    .flatMap((h) => ts.getLeadingCommentRanges(text, h.getFullStart()) ?? [])
    .map((r) => text.slice(r.pos, r.end))
    .join('\n');
}

function isFunctionLike(node) {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node)
  );
}

/** The problems of one file's text: `{ line, message }`. */
export function sizeProblems(file, text) {
  const problems = [];
  const lines = text.split('\n');
  const lineCount = text.endsWith('\n') ? lines.length - 1 : lines.length;
  if (lineCount > MAX_FILE_LINES && !lines.slice(0, 40).some((l) => /^\s*\/\/.*/.test(l) && EXCEPTION.test(l))) {
    problems.push({
      line: 1,
      message: `${lineCount} lines, over ${MAX_FILE_LINES}: split it by concept, or say why it must be one file (a "// size: <why>" comment near the top)`,
    });
  }
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (isFunctionLike(node) && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const length = end - start + 1;
      if (length > MAX_FUNCTION_LINES && !EXCEPTION.test(leadingComments(node, sf))) {
        problems.push({
          line: start + 1,
          message: `function ${functionName(node, sf)} is ${length} lines, over ${MAX_FUNCTION_LINES}: give its steps names, or say why it must be one piece (a "size: <why>" comment above it)`,
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return problems;
}

function main() {
  const root = new URL('..', import.meta.url).pathname;
  const dirs = process.argv.length > 2 ? process.argv.slice(2) : ['src'];
  let count = 0;
  for (const dir of dirs) {
    for (const file of sourceFiles(path.resolve(root, dir)).sort()) {
      for (const p of sizeProblems(file, readFileSync(file, 'utf8'))) {
        count++;
        console.error(`${path.relative(root, file)}:${p.line}: ${p.message}`);
      }
    }
  }
  if (count > 0) {
    console.error(`check-sizes: ${count} problem(s)`);
    process.exit(1);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
