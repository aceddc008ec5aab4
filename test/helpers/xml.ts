// xml.ts: a small XML checker for the SVGs the library writes (loss.svg, the comparison plot): tags balance,
// attributes are quoted and appear once, text holds no bare '<' or '&'. Returns every element with its
// attributes and direct text.
export interface Element {
  name: string;
  attrs: Record<string, string>;
  text: string;
}

/**
 * A small XML checker: tags balance, attributes are quoted, text holds no bare '<' or '&'. Returns every
 * element with its attributes and direct text.
 */
export function parseXml(xml: string): Element[] {
  const out: Element[] = [];
  const stack: Element[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  const attr = /([\w:-]+)="([^"]*)"/g;
  let i = 0;
  let sawRoot = false;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt === -1 ? xml.length : lt);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(text)) throw new Error(`bare & in text near ${i}`);
    if (text.trim() !== '') {
      if (stack.length === 0) throw new Error(`text outside the root element: ${JSON.stringify(text.slice(0, 40))}`);
      stack[stack.length - 1].text += text;
    }
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    if (!m) throw new Error(`malformed tag at ${lt}: ${JSON.stringify(xml.slice(lt, lt + 60))}`);
    const [, closing, name, attrText, selfClosing] = m;
    if (closing) {
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`</${name}> closes <${open?.name}>`);
    } else {
      if (stack.length === 0 && sawRoot) throw new Error('a second root element');
      sawRoot = true;
      const attrs: Record<string, string> = {};
      for (const a of attrText.matchAll(attr)) {
        if (a[1] in attrs) throw new Error(`attribute ${a[1]} twice on <${name}>`);
        attrs[a[1]] = a[2];
      }
      const el = { name, attrs, text: '' };
      out.push(el);
      if (!selfClosing) stack.push(el);
    }
    i = lt + m[0].length;
  }
  if (stack.length) throw new Error(`unclosed <${stack[stack.length - 1].name}>`);
  if (!sawRoot || out[0].name !== 'svg') throw new Error('the root element is not <svg>');
  return out;
}

/** The elements whose class attribute holds `cls`. */
export const byClass = (els: Element[], cls: string) => els.filter((e) => (e.attrs.class ?? '').split(' ').includes(cls));
