/**
 * A test file's name says its tier (README "What the tests check"): a file not named
 * `*.e2e.test.ts` runs in `npm run test:fast` and must start nothing of its own: no Temporal
 * server or worker, no trainer process, no GCS emulator or MLflow server, no child process at all.
 * A file named `*.e2e.test.ts` must start one of those (else it belongs in the fast tier).
 *
 *   tsx scripts/check-test-tiers.ts      (in .ci/run and `npm run lint`; exits 1 naming each file)
 *
 * What "starts" means is read from the code, not from a list of helpers: the TypeScript parser
 * (the `typescript` package the project already builds with) reads each test file and every
 * project module it imports, and a top-level function, class or constant starts something when its
 * body refers to one of the roots below, or to another declaration that does (across modules, so a
 * new helper that wraps `startStack` is caught too). Type-only references do not count.
 *
 * Roots: anything imported from node:child_process (servers, trainers, the CLI, Python are all
 * child processes), `Worker.create` (@temporalio/worker), `TestWorkflowEnvironment`
 * (@temporalio/testing starts a server).
 *
 * The one allowed way for a fast file to use Temporal is test/fast/harness.ts: workflows on the dev
 * server `npm run test:fast` starts once for all files, with scripted activities in the test's own
 * process (no trainer). A reference that starts nothing at run time although its declaration
 * could (a constructor that throws on bad options first; the CLI's dispatcher, which reaches
 * setup-native's spawn, run with a command that only reads) is allowed by a comment on the line
 * before it that contains `tiers: starts nothing`, and the reason; above an import, for every use
 * of what it imports in the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { allTestFiles, isE2eTestFile, ROOT } from '../test/helpers/tiers';

/** Modules whose exports count as starting nothing, and why (README "What the tests check"). */
const ALLOWED_MODULES: Record<string, string> = {
  'test/fast/harness.ts': 'the fast harness: the dev server test:fast shares, scripted activities',
};
const ALLOW_COMMENT = 'tiers: starts nothing';
/** The module of an import under the allow comment. */
const ALLOWED = '(allowed)';

interface Binding {
  readonly module: string;
  /** The imported name, `*` for a namespace or a whole-module require. */
  readonly name: string;
}

interface Reference {
  readonly name: string;
  /** `create` for `Worker.create`. */
  readonly property: string | undefined;
  readonly line: number;
  readonly allowed: boolean;
}

interface ModuleInfo {
  readonly file: string;
  readonly imports: Map<string, Binding>;
  /** Top-level declarations and what their bodies refer to. */
  readonly declarations: Map<string, Reference[]>;
  /** Exported name -> local declaration, or another module's export. */
  readonly exports: Map<string, { local: string } | Binding>;
  readonly starAll: string[];
  /** References outside declarations (the tests themselves). */
  readonly topLevel: Reference[];
}

export interface Violation {
  readonly file: string;
  readonly line: number;
  /** What it starts, through which names: `useStackAndWorker -> startStack -> DevServer -> node:child_process`. */
  readonly chain: string;
}

function isInType(node: ts.Node): boolean {
  for (let n: ts.Node | undefined = node.parent; n; n = n.parent) {
    if (ts.isTypeNode(n) || ts.isTypeAliasDeclaration(n) || ts.isInterfaceDeclaration(n) || ts.isHeritageClause(n)) return true;
    if (ts.isStatement(n) || ts.isSourceFile(n)) return false;
  }
  return false;
}

/** Identifiers a node refers to as values (not names of properties, parameters or declarations). */
function references(node: ts.Node, sf: ts.SourceFile, lines: string[]): Reference[] {
  const out: Reference[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) || ts.isTypeNode(n) || ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)) return;
    if (ts.isIdentifier(n) && !isInType(n) && !isNameOnly(n)) {
      const parent = n.parent;
      const property = ts.isPropertyAccessExpression(parent) && parent.expression === n ? parent.name.text : undefined;
      const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const allowed = [lines[line - 1], lines[line]].some((l) => l?.includes(ALLOW_COMMENT));
      out.push({ name: n.text, property, line: line + 1, allowed });
    }
    if (ts.isCallExpression(n) && n.expression.getText(sf) === 'require' && n.arguments[0] && ts.isStringLiteral(n.arguments[0])) {
      const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      out.push({ name: `require:${n.arguments[0].text}`, property: undefined, line: line + 1, allowed: false });
    }
    ts.forEachChild(n, visit);
  };
  visit(node);
  return out;
}

function isNameOnly(id: ts.Identifier): boolean {
  const p = id.parent;
  if ((ts.isPropertyAccessExpression(p) || ts.isQualifiedName(p)) && (p as ts.PropertyAccessExpression).name === id) return true;
  if ((ts.isPropertyAssignment(p) || ts.isMethodDeclaration(p) || ts.isPropertyDeclaration(p) || ts.isGetAccessor(p) || ts.isSetAccessor(p)) && p.name === id) return true;
  if ((ts.isParameter(p) || ts.isVariableDeclaration(p) || ts.isFunctionDeclaration(p) || ts.isClassDeclaration(p) || ts.isBindingElement(p)) && p.name === id) return true;
  if (ts.isBindingElement(p) && p.propertyName === id) return true;
  if (ts.isLabeledStatement(p) || ts.isBreakOrContinueStatement(p)) return true;
  return false;
}

function resolveModule(from: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (candidate.endsWith('.ts') && fs.existsSync(candidate)) return candidate;
  }
  return base;
}

const parsed = new Map<string, ModuleInfo>();

function moduleInfo(file: string, text?: string): ModuleInfo {
  const cached = text === undefined ? parsed.get(file) : undefined;
  if (cached) return cached;
  const source = text ?? fs.readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const lines = source.split('\n');
  const info: ModuleInfo = { file, imports: new Map(), declarations: new Map(), exports: new Map(), starAll: [], topLevel: [] };
  const exported = (n: ts.Node): boolean => ts.canHaveModifiers(n) && (ts.getModifiers(n) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st)) {
      const clause = st.importClause;
      if (!clause || clause.isTypeOnly || !ts.isStringLiteral(st.moduleSpecifier)) continue;
      const line = sf.getLineAndCharacterOfPosition(st.getStart(sf)).line;
      // An import under the allow comment is allowed wherever the file uses it.
      const module = [lines[line - 1], lines[line]].some((l) => l?.includes(ALLOW_COMMENT)) ? ALLOWED : resolveModule(file, st.moduleSpecifier.text);
      if (clause.name) info.imports.set(clause.name.text, { module, name: 'default' });
      const nb = clause.namedBindings;
      if (nb && ts.isNamespaceImport(nb)) info.imports.set(nb.name.text, { module, name: '*' });
      if (nb && ts.isNamedImports(nb)) {
        for (const el of nb.elements) if (!el.isTypeOnly) info.imports.set(el.name.text, { module, name: (el.propertyName ?? el.name).text });
      }
    } else if (ts.isExportDeclaration(st)) {
      if (st.isTypeOnly) continue;
      const module = st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) ? resolveModule(file, st.moduleSpecifier.text) : undefined;
      if (!st.exportClause) {
        if (module) info.starAll.push(module);
      } else if (ts.isNamedExports(st.exportClause)) {
        for (const el of st.exportClause.elements) {
          if (el.isTypeOnly) continue;
          const inner = (el.propertyName ?? el.name).text;
          info.exports.set(el.name.text, module ? { module, name: inner } : { local: inner });
        }
      }
    } else if ((ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st)) && st.name) {
      info.declarations.set(st.name.text, references(st, sf, lines));
      if (exported(st)) info.exports.set(st.name.text, { local: st.name.text });
    } else if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) {
        const refs = d.initializer ? references(d.initializer, sf, lines) : [];
        const names: string[] = [];
        const collect = (b: ts.BindingName): void => {
          if (ts.isIdentifier(b)) names.push(b.text);
          else for (const el of b.elements) if (!ts.isOmittedExpression(el)) collect(el.name);
        };
        collect(d.name);
        for (const name of names) {
          info.declarations.set(name, refs);
          if (exported(st)) info.exports.set(name, { local: name });
        }
      }
    } else if (!ts.isInterfaceDeclaration(st) && !ts.isTypeAliasDeclaration(st)) {
      info.topLevel.push(...references(st, sf, lines));
    }
  }
  if (text === undefined) parsed.set(file, info);
  return info;
}

const rel = (file: string): string => path.relative(ROOT, file).split(path.sep).join('/');

/** Why a binding imported from another module starts something, or undefined. */
function bindingStarts(b: Binding, property: string | undefined, seen: Set<string>): string | undefined {
  if (b.module === 'node:child_process' || b.module === 'child_process') return `${b.module}`;
  if (b.module === '@temporalio/worker' && b.name === 'Worker' && property === 'create') return 'Worker.create (a Temporal worker)';
  if (b.module === '@temporalio/testing' && b.name === 'TestWorkflowEnvironment') return 'TestWorkflowEnvironment (a Temporal server)';
  if (!path.isAbsolute(b.module) || !b.module.endsWith('.ts')) return undefined;
  if (ALLOWED_MODULES[rel(b.module)] !== undefined) return undefined;
  const info = moduleInfo(b.module);
  if (b.name === '*') {
    for (const name of info.exports.keys()) {
      const why = exportStarts(info, name, seen);
      if (why) return why;
    }
    return undefined;
  }
  return exportStarts(info, b.name, seen);
}

function exportStarts(info: ModuleInfo, name: string, seen: Set<string>): string | undefined {
  const target = info.exports.get(name);
  if (target && 'local' in target) return declarationStarts(info, target.local, seen);
  if (target) return bindingStarts(target, undefined, seen);
  for (const module of info.starAll) {
    const why = bindingStarts({ module, name }, undefined, seen);
    if (why) return why;
  }
  return undefined;
}

function declarationStarts(info: ModuleInfo, name: string, seen: Set<string>): string | undefined {
  const key = `${info.file}#${name}`;
  if (seen.has(key)) return undefined;
  seen.add(key);
  for (const ref of info.declarations.get(name) ?? []) {
    if (ref.allowed) continue;
    const why = referenceStarts(info, ref, seen);
    if (why) return `${name} -> ${why}`;
  }
  return undefined;
}

function referenceStarts(info: ModuleInfo, ref: Reference, seen: Set<string>): string | undefined {
  if (ref.name.startsWith('require:')) {
    const module = ref.name.slice('require:'.length);
    return bindingStarts({ module: resolveModule(info.file, module), name: '*' }, undefined, seen);
  }
  if (info.declarations.has(ref.name)) return declarationStarts(info, ref.name, seen);
  const imported = info.imports.get(ref.name);
  if (!imported) return undefined;
  const why = bindingStarts(imported, ref.property, seen);
  return why && (why.startsWith(ref.name) ? why : `${ref.name} -> ${why}`);
}

/** What a test file starts: one entry per line that starts something (empty for a pure file). */
export function startsIn(file: string, text?: string): Violation[] {
  const info = moduleInfo(path.resolve(ROOT, file), text);
  const refs = [...info.topLevel, ...[...info.declarations.values()].flat()];
  const out: Violation[] = [];
  const lines = new Set<number>();
  for (const ref of refs) {
    if (ref.allowed || lines.has(ref.line)) continue;
    const chain = referenceStarts(info, ref, new Set());
    if (chain) {
      lines.add(ref.line);
      out.push({ file: rel(info.file), line: ref.line, chain });
    }
  }
  return out.sort((a, b) => a.line - b.line);
}

/** Every file whose name says the wrong tier, with the reason. */
export function checkTiers(files = allTestFiles()): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const starts = startsIn(file);
    if (!isE2eTestFile(file) && starts.length > 0) {
      const first = starts[0]!;
      problems.push(`${file}:${first.line}: starts ${first.chain}${starts.length > 1 ? ` (and ${starts.length - 1} more)` : ''}; name it *.e2e.test.ts or start nothing`);
    }
    if (isE2eTestFile(file) && starts.length === 0) {
      problems.push(`${file}: named e2e but starts no server, worker, trainer or process: drop .e2e so test:fast runs it`);
    }
  }
  return problems;
}

if (require.main === module) {
  const problems = checkTiers(process.argv.length > 2 ? process.argv.slice(2) : undefined);
  for (const p of problems) console.error(p);
  const n = process.argv.length > 2 ? process.argv.length - 2 : allTestFiles().length;
  console.log(problems.length === 0 ? `[check-test-tiers] ${n} test files, each named for its tier` : `[check-test-tiers] ${problems.length} files named for the wrong tier (README "What the tests check")`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
