// Small DOM helpers: building elements, and keeping a table body's rows in step with a list
// without rebuilding them, so a focused control keeps its focus while the figures change.

type Attrs = Record<string, string | boolean | undefined>;

/** `h("td", { class: "n" }, "3")`: an element with attributes (false/undefined: left out). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children);
  return el;
}

/** Sets text only when it differs, so screen readers and the DOM see no needless change. */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function setAttr(el: Element, name: string, value: string): void {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

/** Makes `body`'s rows those of `items`, in order: rows are found by `data-key`, made by
 * `create` when new, refreshed by `update`, and removed when their item is gone. When a removed
 * row held the focus, it goes to `fallbackFocus`. */
export function syncRows<T>(
  body: HTMLElement,
  items: readonly T[],
  key: (item: T) => string,
  create: (item: T) => HTMLTableRowElement,
  update: (row: HTMLTableRowElement, item: T) => void,
  fallbackFocus?: HTMLElement,
): void {
  const wanted = new Set(items.map(key));
  const existing = new Map<string, HTMLTableRowElement>();
  for (const row of Array.from(body.children) as HTMLTableRowElement[]) {
    const k = row.dataset.key ?? "";
    if (wanted.has(k)) {
      existing.set(k, row);
      continue;
    }
    // Removed before any row moves, so rows that stay keep their place (and their focus).
    const hadFocus = row.contains(document.activeElement);
    row.remove();
    if (hadFocus) fallbackFocus?.focus();
  }
  let at = 0;
  for (const item of items) {
    const k = key(item);
    let row = existing.get(k);
    if (!row) {
      row = create(item);
      row.dataset.key = k;
    }
    update(row, item);
    const current = body.children[at];
    if (current !== row) body.insertBefore(row, current ?? null);
    at += 1;
  }
}
