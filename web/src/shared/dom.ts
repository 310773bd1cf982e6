// Small DOM helpers shared by the pages: find a page's element by id (failing loudly when the
// page lacks it) and build elements without innerHTML, so server text is never parsed as HTML.

/** The element with `id`, of the given type. */
export function byId<T extends HTMLElement = HTMLElement>(id: string, root: Document = document): T {
  const found = root.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

type Props = Record<string, string | number | boolean | undefined>;

/** A new element with attributes (`false`/`undefined` ones left out) and children (text or
 * elements). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

/** Sets an element's text only when it changed (keeps screen readers from re-reading it). */
export function setText(node: Node, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}
