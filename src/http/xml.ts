import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { ValidationError } from '../errors.js';

/**
 * XML in and out, mapped onto the same JSON shapes the API uses:
 * - a request body is one root element (any name) whose child elements are the fields; a field
 *   given several times is an array (`<api>CONTACT</api><api>SMS</api>`);
 * - text is converted to numbers and booleans only where the route's schema asks for them
 *   (`coerceXmlBody`), so `<name>0123</name>` stays a string;
 * - a response is the JSON the route serializer produced, wrapped in a root element
 *   (`response` unless the route names one); arrays become repeated elements.
 * DOCTYPE and entity declarations are refused outright (no XXE, no entity expansion).
 */

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  processEntities: true,
});

const builder = new XMLBuilder({ ignoreAttributes: true, format: false, suppressEmptyNode: false });

export function parseXmlBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  if (/<!DOCTYPE/i.test(text) || /<!ENTITY/i.test(text)) {
    throw new ValidationError([
      { field: 'body', message: 'XML with a DOCTYPE or ENTITY declaration is not accepted; remove it' },
    ]);
  }
  let valid: ReturnType<typeof XMLValidator.validate>;
  let doc: unknown;
  try {
    valid = XMLValidator.validate(text);
    doc = valid === true ? parser.parse(text) : undefined;
  } catch (err) {
    // The parser refuses some input by throwing (an element named `__proto__`, `constructor`
    // or `prototype`, ...): that is the client's XML, so a 400 naming the problem, never a 500.
    const msg = (err instanceof Error ? err.message : String(err)).replace(/^\[[A-Z]+\]\s*/, '');
    throw new ValidationError([{ field: 'body', message: `XML not accepted: ${msg.slice(0, 200)}` }]);
  }
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    throw new ValidationError([
      { field: 'body', message: `malformed XML at line ${line}, column ${col}: ${msg}` },
    ]);
  }
  if (!isRecord(doc)) throw new ValidationError([{ field: 'body', message: 'XML body has no root element' }]);
  const roots = Object.keys(doc);
  if (roots.length !== 1) {
    throw new ValidationError([{ field: 'body', message: 'XML body must have exactly one root element' }]);
  }
  const content = doc[roots[0]!];
  return content === '' ? {} : content;
}

type JsonSchemaLike = Record<string, unknown>;

/** Converts XML text values to the types the route's body schema declares. Never throws. */
export function coerceXmlBody(value: unknown, schema: unknown): unknown {
  if (!isRecord(schema)) return value;
  const s = schema as JsonSchemaLike;
  const alternatives = s.anyOf ?? s.oneOf;
  if (Array.isArray(alternatives)) {
    if (typeof value === 'string' && alternatives.some((a) => isRecord(a) && a.type === 'string'))
      return value;
    for (const alt of alternatives) {
      const out = coerceXmlBody(value, alt);
      if (out !== value) return out;
    }
    return value;
  }
  const type = s.type;
  if (type === 'object' || isRecord(s.properties)) {
    if (value === '') return {};
    if (!isRecord(value)) return value;
    const props = isRecord(s.properties) ? s.properties : {};
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = Object.hasOwn(props, k) ? coerceXmlBody(v, props[k]) : v;
    return out;
  }
  if (type === 'array') {
    if (value === '') return [];
    const arr = Array.isArray(value) ? value : [value];
    return arr.map((item) => coerceXmlBody(item, s.items));
  }
  if (typeof value !== 'string') return value;
  if ((type === 'integer' || type === 'number') && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value)) {
    return Number(value);
  }
  if (type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  if (type === 'null' && value === '') return null;
  return value;
}

const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

function sanitizeForXml(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sanitizeForXml);
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const name = XML_NAME.test(k) && !/^xml/i.test(k) ? k : `_${k.replace(/[^A-Za-z0-9._-]/g, '_')}`;
      out[name] = sanitizeForXml(v);
    }
    return out;
  }
  if (value === null || value === undefined) return '';
  return value;
}

/** Builds an XML document from an already serialized (filtered) JSON value. */
export function buildXml(value: unknown, root = 'response', item = 'item'): string {
  const content = Array.isArray(value) ? { [item]: sanitizeForXml(value) } : sanitizeForXml(value);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ [root]: content })}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
