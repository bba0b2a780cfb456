import { Ajv, type ErrorObject, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import { ValidationError, type FieldProblem } from '../errors.js';

// ajv-formats is CommonJS; under ESM its default export may be wrapped once more.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

/** At most this many problems are listed in one validation result. */
export const MAX_PROBLEMS = 50;

const common: Options = {
  allErrors: true,
  strict: false,
  $data: false,
  useDefaults: true,
  removeAdditional: false,
  messages: true,
  verbose: true,
};

/**
 * Two validators: bodies are checked as sent (a string is not a number, `"true"` is not a
 * boolean); path, query and headers arrive as text and are converted to the declared types
 * (booleans only from `true`/`false`).
 */
const bodyAjv = addFormats(new Ajv({ ...common, coerceTypes: false }));
const textAjv = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : textAjv;
  return ajv.compile(schema as object);
};

const PART_NAMES: Record<string, string> = {
  body: 'body',
  querystring: 'query',
  params: 'params',
  headers: 'header',
};

/** Turns ajv's errors into field-by-field problems with messages that say what to fix. */
export function toProblems(errors: ErrorObject[], part: string): FieldProblem[] {
  const prefix = PART_NAMES[part] ?? part;
  const problems: FieldProblem[] = [];
  const seen = new Set<string>();
  for (const e of explainAlternatives(errors)) {
    // anyOf/oneOf report each failed branch and then a summary; the summary is enough.
    if (e.keyword === 'if') continue;
    const path = e.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    let field = [prefix, ...path].join('.');
    let message: string;
    const p = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'required':
        field = [prefix, ...path, String(p.missingProperty)].join('.');
        message = 'is required';
        break;
      case 'additionalProperties':
        field = [prefix, ...path, String(p.additionalProperty)].join('.');
        message = 'is not a known field; remove it';
        break;
      case 'type':
        message = `must be ${article(String(p.type))}`;
        break;
      case 'enum':
        message = `must be one of: ${(p.allowedValues as unknown[]).map((v) => String(v)).join(', ')}`;
        break;
      case 'const':
        message = `must be ${JSON.stringify(p.allowedValue)}`;
        break;
      case 'maxLength':
        message = `must be at most ${String(p.limit)} characters long`;
        break;
      case 'minLength':
        message =
          Number(p.limit) === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long`;
        break;
      case 'maxItems':
        message = `must have at most ${String(p.limit)} items`;
        break;
      case 'minItems':
        message = `must have at least ${String(p.limit)} item${Number(p.limit) === 1 ? '' : 's'}`;
        break;
      case 'pattern': {
        const description = (e.parentSchema as { description?: unknown } | undefined)?.description;
        message =
          typeof description === 'string'
            ? `has the wrong form: ${description}`
            : `has the wrong form (expected to match ${String(p.pattern)})`;
        break;
      }
      case 'format':
        message = `must be a valid ${String(p.format)}`;
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        message = `must be ${String(p.comparison)} ${String(p.limit)}`;
        break;
      case 'anyOf':
      case 'oneOf':
        message = 'does not match any of the allowed forms';
        break;
      default:
        message = e.message ?? 'is invalid';
    }
    if (path.length === 0 && e.keyword === 'type' && prefix === 'body')
      message = `must be ${article(String(p.type))} (the request body)`;
    const key = `${field}\n${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push({ field, message });
    if (problems.length >= MAX_PROBLEMS) break;
  }
  // Drop branch errors that a summary anyOf/oneOf problem of the same field already covers.
  const summaries = new Set(
    problems.filter((x) => x.message.startsWith('does not match any')).map((x) => x.field),
  );
  return problems.filter((x) => !summaries.has(x.field) || x.message.startsWith('does not match any'));
}

/**
 * An anyOf/oneOf whose value has the type of exactly one alternative (`1e20` for "an id or
 * null") is explained by that alternative's own problems ("must be <= 9007199254740991"),
 * not by a summary; otherwise the summary stands.
 */
function explainAlternatives(errors: ErrorObject[]): ErrorObject[] {
  const skip = new Set<ErrorObject>();
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && e.keyword !== 'oneOf') continue;
    const prefix = `${e.schemaPath}/`;
    const branches = new Map<string, ErrorObject[]>();
    for (const b of errors) {
      if (b === e || !b.schemaPath.startsWith(prefix) || !b.instancePath.startsWith(e.instancePath)) continue;
      const index = b.schemaPath.slice(prefix.length).split('/')[0]!;
      branches.set(index, [...(branches.get(index) ?? []), b]);
    }
    const wrongType = (bs: ErrorObject[]) =>
      bs.some((b) => b.keyword === 'type' && b.instancePath === e.instancePath);
    const fitting = [...branches.values()].filter((bs) => !wrongType(bs));
    if (fitting.length !== 1) continue;
    skip.add(e);
    for (const bs of branches.values()) if (wrongType(bs)) for (const b of bs) skip.add(b);
  }
  return skip.size === 0 ? errors : errors.filter((e) => !skip.has(e));
}

function article(type: string): string {
  const t = type.split(',').join(' or ');
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

const compiled = new WeakMap<object, ReturnType<Ajv['compile']>>();

/**
 * Validates a value against a schema outside a route (services called by the CLI, bulk items):
 * throws a ValidationError listing every problem, fields prefixed with `prefix`.
 */
export function assertValid<T>(schema: object, value: unknown, prefix = 'body'): T {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = bodyAjv.compile(schema);
    compiled.set(schema, validate);
  }
  if (!validate(value)) {
    throw new ValidationError(toProblems(validate.errors ?? [], prefix));
  }
  return value as T;
}
