/**
 * A set of ASCII characters tested by character code. The grammar tests every character of every
 * header value against a class; a `Set<string>` lookup of a one-character string per character was
 * most of the parser's time. Characters outside ASCII (and whole surrogate pairs) are never members.
 */
export class CharClass {
  private readonly table = new Uint8Array(128);

  constructor(chars: string) {
    for (let i = 0; i < chars.length; i++) {
      const code = chars.charCodeAt(i);
      if (code >= 128) throw new TypeError('a CharClass holds ASCII characters only');
      this.table[code] = 1;
    }
  }

  hasCode(code: number): boolean {
    return code < 128 && this.table[code] === 1;
  }

  /** Whether `ch` (one character, or one code point) is in the class. */
  has(ch: string): boolean {
    return ch.length === 1 && this.hasCode(ch.charCodeAt(0));
  }

  /** Whether every character of `text` is in the class (true for ''). */
  all(text: string): boolean {
    for (let i = 0; i < text.length; i++) if (!this.hasCode(text.charCodeAt(i))) return false;
    return true;
  }
}
