// regex.ts: Oniguruma regexes (the Split pre-tokenizer patterns of a tokenizer.json) translated to JS /u
// regexes, the way @huggingface/tokenizers (the JS port of HF tokenizers, our parity reference) translates them:
// \s is White_Space, \d is Nd, '.' is [^\n], {,n} is {0,n}, (?i:...) folds ASCII letters, \p{Han} is
// \p{Script=Han}. Unsupported constructs (\w, \b, anchors, possessive quantifiers, atomic or other (?...)
// groups, nested classes, class intersection) are errors made by the caller's `fail`, naming the index.

/** Characters that must be escaped to stand for themselves in a /u regex (outside and inside a class). */
const JS_SYNTAX = '^$\\.*+?()[]{}|/';
const JS_CLASS_SYNTAX = '^$\\.*+?()[]{}|/-';

/**
 * The JS (/u) regex for an Oniguruma one, as the reference translates it: \s -> \p{White_Space}, \d -> \p{Nd},
 * '.' -> [^\n], {,n} -> {0,n}, (?i:...) folds ASCII letters. `fail(index, message)` makes the error for
 * anything not supported.
 */
export function translateOniguruma(src: string, fail: (index: number, message: string) => Error): string {
  let out = '';
  let i = 0;
  const folds: boolean[] = []; // per open group: case-insensitive?
  let fold = false;

  const hexEscape = (at: number): { text: string; end: number } | null => {
    const braced = /^\\x\{([0-9A-Fa-f]{1,6})\}/.exec(src.slice(at));
    if (braced) return { text: `\\u{${braced[1]}}`, end: at + braced[0].length };
    const short = /^\\x([0-9A-Fa-f]{2})/.exec(src.slice(at));
    if (short) return { text: `\\x${short[1]}`, end: at + short[0].length };
    const u = /^\\u([0-9A-Fa-f]{4})/.exec(src.slice(at));
    if (u) return { text: `\\u${u[1]}`, end: at + u[0].length };
    return null;
  };

  /** One escape at `at` (src[at] is the backslash); `inClass` picks the escaping rules. */
  const escape = (at: number, inClass: boolean): { text: string; end: number } => {
    if (at + 1 >= src.length) throw fail(at, 'a lone backslash at the end');
    const hex = hexEscape(at);
    if (hex) return hex;
    const c = src[at + 1];
    switch (c) {
      case 's':
        return { text: '\\p{White_Space}', end: at + 2 };
      case 'S':
        return { text: '\\P{White_Space}', end: at + 2 };
      case 'd':
        return { text: '\\p{Nd}', end: at + 2 };
      case 'D':
        return { text: '\\P{Nd}', end: at + 2 };
      case 'n':
      case 'r':
      case 't':
      case 'f':
      case 'v':
        return { text: `\\${c}`, end: at + 2 };
      case 'p':
      case 'P': {
        const m = /^\\[pP]\{(\^?)([A-Za-z_][A-Za-z0-9_=]*)\}/.exec(src.slice(at));
        if (!m || m[1] === '^') throw fail(at, 'unsupported property escape');
        return { text: `\\${c}{${propertyName(m[2], () => fail(at, `unknown Unicode property ${m[2]}`))}}`, end: at + m[0].length };
      }
    }
    if (/[A-Za-z0-9]/.test(c)) throw fail(at, `unsupported escape \\${c}`);
    const cp = src.codePointAt(at + 1)!;
    const ch = String.fromCodePoint(cp);
    const syntax = inClass ? JS_CLASS_SYNTAX : JS_SYNTAX;
    return { text: syntax.includes(ch) ? `\\${ch}` : ch, end: at + 1 + ch.length };
  };

  const quantifierSuffix = (): void => {
    if (src[i] === '?') {
      out += '?';
      i++;
    } else if (src[i] === '+') {
      throw fail(i, 'possessive quantifiers are not supported');
    }
  };

  while (i < src.length) {
    const c = src[i];
    switch (c) {
      case '\\': {
        const e = escape(i, false);
        out += e.text;
        i = e.end;
        break;
      }
      case '[': {
        const start = i;
        let cls = '[';
        i++;
        if (src[i] === '^') {
          cls += '^';
          i++;
        }
        if (src[i] === ']') throw fail(i, 'a "]" first in a character class is not supported');
        while (i < src.length && src[i] !== ']') {
          if (src[i] === '[') throw fail(i, 'nested character classes are not supported');
          if (src[i] === '&' && src[i + 1] === '&') throw fail(i, 'character class intersection is not supported');
          if (src[i] === '\\') {
            const e = escape(i, true);
            cls += e.text;
            i = e.end;
            continue;
          }
          const ch = String.fromCodePoint(src.codePointAt(i)!);
          if (fold && /[A-Za-z]/.test(ch)) throw fail(i, 'letters in a character class inside (?i:...) are not supported');
          cls += ch === '/' ? '\\/' : ch;
          i += ch.length;
        }
        if (i >= src.length) throw fail(start, 'unterminated character class');
        out += cls + ']';
        i++;
        break;
      }
      case '(': {
        const rest = src.slice(i);
        let open: string;
        let len: number;
        let groupFold: boolean = fold;
        if (rest.startsWith('(?i:')) {
          open = '(?:';
          len = 4;
          groupFold = true;
        } else {
          const m = /^\((?:\?(?:<[=!]|[:=!]|<[A-Za-z_][A-Za-z0-9_]*>))?/.exec(rest)!;
          if (m[0] === '(' && rest[1] === '?') throw fail(i, `unsupported group ${rest.slice(0, 3)}`);
          open = m[0];
          len = m[0].length;
        }
        folds.push(fold);
        fold = groupFold;
        out += open;
        i += len;
        break;
      }
      case ')':
        if (folds.length === 0) throw fail(i, 'unbalanced ")"');
        fold = folds.pop()!;
        out += ')';
        i++;
        break;
      case '.':
        out += '[^\\n]';
        i++;
        break;
      case '^':
      case '$':
        throw fail(i, `anchor ${c} is not supported`);
      case '*':
      case '+':
      case '?':
        out += c;
        i++;
        quantifierSuffix();
        break;
      case '{': {
        const m = /^\{(\d*)(,?)(\d*)\}/.exec(src.slice(i));
        if (!m || (m[1] === '' && (m[2] === '' || m[3] === ''))) {
          out += '\\{';
          i++;
          break;
        }
        out += `{${m[1] === '' ? '0' : m[1]}${m[2]}${m[3]}}`;
        i += m[0].length;
        quantifierSuffix();
        break;
      }
      case '}':
      case ']':
      case '/':
        out += `\\${c}`;
        i++;
        break;
      default: {
        const ch = String.fromCodePoint(src.codePointAt(i)!);
        out += fold && /[A-Za-z]/.test(ch) ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch;
        i += ch.length;
      }
    }
  }
  if (folds.length > 0) throw fail(src.length, 'unbalanced "("');
  return out;
}

/** A property name valid in a /u regex: as written, or as a script (Oniguruma's \p{Han} is \p{Script=Han}). */
function propertyName(name: string, unknown: () => Error): string {
  for (const candidate of [name, `Script=${name}`]) {
    try {
      new RegExp(`\\p{${candidate}}`, 'u');
      return candidate;
    } catch {
      // try the next spelling
    }
  }
  throw unknown();
}

/** `s` as a regex source that matches exactly `s` (a Split step's String pattern, an added token's content). */
export function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
