/**
 * HTML templates as plain functions: `html` escapes every interpolated value unless it is
 * already markup (an `Html` made by `html` itself). Nothing else builds markup by hand.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type Part = Html | string | number | boolean | null | undefined | readonly Part[];

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Escapes text for element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

function render(part: Part): string {
  if (part instanceof Html) return part.value;
  if (Array.isArray(part)) return (part as readonly Part[]).map(render).join('');
  if (part === null || part === undefined || part === false || part === true) return '';
  return escapeHtml(String(part));
}

/** A template literal tag: `html\`<p>${name}</p>\`` escapes `name`. */
export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new Html(out);
}

/** Markup known to be safe (constant strings only). */
export function raw(markup: string): Html {
  return new Html(markup);
}

/** `checked` / `selected` attributes. */
export const checked = (on: boolean): Html => raw(on ? ' checked' : '');
export const selected = (on: boolean): Html => raw(on ? ' selected' : '');

/** A path segment for a link (domain, user id, numbers). */
export const seg = (s: string | number): string => encodeURIComponent(String(s));

export function formatTime(ms: number | null): string {
  if (ms === null) return '—';
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}
