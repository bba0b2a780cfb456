/** Content negotiation for API responses: JSON (default) or XML, chosen by the Accept header. */
export type ResponseFormat = 'json' | 'xml';

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
  order: number;
}

function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  header.split(',').forEach((part, order) => {
    const [range, ...params] = part.trim().split(';');
    if (!range) return;
    const [type, subtype] = range.trim().toLowerCase().split('/');
    if (!type || !subtype) return;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split('=');
      if (k?.trim().toLowerCase() === 'q' && v !== undefined) {
        const n = Number(v.trim());
        q = Number.isFinite(n) && n >= 0 && n <= 1 ? n : 0;
      }
    }
    ranges.push({ type, subtype, q, order });
  });
  return ranges;
}

const OFFERS: { format: ResponseFormat; type: string; subtype: string }[] = [
  { format: 'json', type: 'application', subtype: 'json' },
  { format: 'xml', type: 'application', subtype: 'xml' },
  { format: 'xml', type: 'text', subtype: 'xml' },
];

/**
 * Picks the response format for an Accept header; `undefined` when none of JSON or XML is
 * acceptable (the caller answers 406). A missing or empty header means JSON.
 */
export function negotiate(accept: string | undefined): ResponseFormat | undefined {
  if (accept === undefined || accept.trim() === '') return 'json';
  const ranges = parseAccept(accept);
  if (ranges.length === 0) return 'json';
  let best: { format: ResponseFormat; q: number; specificity: number; order: number } | undefined;
  for (const offer of OFFERS) {
    // The most specific range that matches the offer decides its quality (RFC 9110 §12.5.1).
    let match: { q: number; specificity: number; order: number } | undefined;
    for (const r of ranges) {
      const typeOk = r.type === '*' || r.type === offer.type;
      const subOk = r.subtype === '*' || r.subtype === offer.subtype;
      if (!typeOk || !subOk) continue;
      const specificity = (r.type === '*' ? 0 : 1) + (r.subtype === '*' ? 0 : 1);
      if (!match || specificity > match.specificity) match = { q: r.q, specificity, order: r.order };
    }
    if (!match || match.q <= 0) continue;
    // Prefer higher q, then an explicitly named type, then JSON (the first offer).
    if (
      !best ||
      match.q > best.q ||
      (match.q === best.q && match.specificity > best.specificity && best.specificity < 2)
    ) {
      best = { format: offer.format, ...match };
    }
  }
  return best?.format;
}

export function contentTypeOf(format: ResponseFormat): string {
  return format === 'xml' ? 'application/xml; charset=utf-8' : 'application/json; charset=utf-8';
}
