// The page's `role="alert"` region: every refusal or failure is said there, with the server's
// own message, newest first, so a page never fails silently.
import { describe } from "./api";
import { el } from "./dom";

/** How many messages stay on screen. */
const KEPT = 5;

export class Alerts {
  constructor(private readonly region: HTMLElement) {}

  /** Says `what` failed and why (`error` as the server put it). */
  fail(what: string, error: unknown): void {
    this.say(`${what}: ${describe(error)}`);
  }

  /** Says `message`. */
  say(message: string): void {
    const time = new Date().toLocaleTimeString();
    this.region.prepend(el("p", { class: "alert" }, el("time", {}, time), " ", message));
    while (this.region.childElementCount > KEPT) this.region.lastElementChild!.remove();
  }

  /** Clears every message. */
  clear(): void {
    this.region.replaceChildren();
  }
}
