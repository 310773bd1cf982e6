// The desktop's feed (`CoreService.Feed`): its lease on the server and its stream of events.
// When the feed ends for any reason but a deliberate stop (the network dropped, the server
// restarted), it is reopened naming its client, from the last revision seen + 1, so the events
// missed meanwhile are replayed and nothing is lost or repeated, as long as the server's grace
// period has not passed.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ClientEvent, Connected } from "../gen/switchboard/v1/core_pb";
import { describe, type Services } from "../shared/api";

export type FeedStatus = "connecting" | "connected" | "reconnecting" | "stopped";

export interface FeedHandlers {
  /** Every greeting after the first: the feed is back. `startRevision` is where it resumed
   * from (0: it could not resume from the last revision, re-read everything). */
  reconnected(connected: Connected, startRevision: bigint): void;
  /** An event, once, in revision order. */
  event(event: ClientEvent): void;
  /** The feed's state changed; `detail` says why when it is not connected. */
  status(status: FeedStatus, detail?: string): void;
  /** The server no longer knows this client (its grace period passed): the desktop must
   * start over with a new one. The feed has stopped. */
  expired(error: ConnectError): void;
  /** The access token was refused; returns whether a fresh one is now in place. */
  renewToken(): Promise<boolean>;
}

/** Waits between reconnection attempts, growing to this. */
const MAX_BACKOFF_MS = 4000;
/** Attempts at the first opening before signing in is given up. */
const FIRST_ATTEMPTS = 4;
/** A feed silent this long is taken as dead (the server sends progress notices on idle
 * feeds, every 10 s by default). */
const SILENCE_MS = 45_000;

export class Feed {
  clientId = "";
  /** The last revision seen: an event's, a progress notice's, or a fresh greeting's. */
  lastRevision = 0n;
  /** Where the last resume started (`start_revision`), for diagnostics. */
  resumedFrom: bigint | undefined;
  private stopped = false;
  private current: AbortController | undefined;
  /** Fails a first opening still pending when the feed stops. */
  private abandon: ((error: unknown) => void) | undefined;
  private watchdog: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly api: Services,
    private readonly clientName: string,
    private readonly on: FeedHandlers,
  ) {}

  /** Opens the feed; resolves with the first greeting, then keeps it open in the background. */
  open(): Promise<Connected> {
    return new Promise((resolve, reject) => {
      this.abandon = reject;
      void this.run(
        (connected) => {
          this.abandon = undefined;
          resolve(connected);
        },
        (error) => {
          this.abandon = undefined;
          reject(error);
        },
      );
    });
  }

  /** Ends the feed deliberately (no reconnection). */
  stop(): void {
    this.stopped = true;
    this.current?.abort();
    clearTimeout(this.watchdog);
    this.abandon?.(new Error("the feed was closed before the server greeted it"));
    this.abandon = undefined;
    this.on.status("stopped");
  }

  private async run(first: (c: Connected) => void, failed: (e: unknown) => void): Promise<void> {
    let opened = false;
    let attempt = 0;
    // After OUT_OF_RANGE the journal no longer has what was missed: resume from now, re-read.
    let resumable = true;
    while (!this.stopped) {
      const resuming = this.clientId !== "";
      const start = resuming && resumable ? this.lastRevision + 1n : 0n;
      this.on.status(opened ? "reconnecting" : "connecting");
      const abort = new AbortController();
      this.current = abort;
      let reason = "the feed ended";
      try {
        const frames = this.api.core.feed(
          { clientId: this.clientId, clientName: this.clientName, startRevision: start },
          { signal: abort.signal },
        );
        this.arm(abort);
        for await (const response of frames) {
          this.arm(abort);
          const frame = response.frame;
          if (frame.case === "connected") {
            attempt = 0;
            resumable = true;
            this.clientId = frame.value.clientId;
            if (start === 0n) this.lastRevision = frame.value.revision;
            if (opened) this.resumedFrom = start;
            this.on.status("connected");
            if (!opened) {
              opened = true;
              first(frame.value);
            } else {
              this.on.reconnected(frame.value, start);
            }
          } else if (frame.case === "event") {
            if (frame.value.revision <= this.lastRevision) continue;
            this.lastRevision = frame.value.revision;
            this.on.event(frame.value);
          } else if (frame.case === "progress") {
            if (frame.value.revision > this.lastRevision) this.lastRevision = frame.value.revision;
          }
        }
      } catch (error) {
        if (this.stopped) return;
        const code = error instanceof ConnectError ? error.code : undefined;
        const transient = code === Code.Unavailable || code === Code.Unknown || code === Code.Canceled;
        if (!opened && (!transient || attempt + 1 >= FIRST_ATTEMPTS)) {
          // The first open failed for a reason retrying will not fix.
          this.stopped = true;
          clearTimeout(this.watchdog);
          failed(error);
          return;
        }
        if (code === Code.NotFound && resuming) {
          this.stopped = true;
          clearTimeout(this.watchdog);
          this.on.status("stopped", describe(error));
          this.on.expired(error as ConnectError);
          return;
        }
        if (code === Code.OutOfRange) resumable = false;
        if (code === Code.Unauthenticated && !(await this.on.renewToken())) {
          this.stopped = true;
          clearTimeout(this.watchdog);
          this.on.status("stopped", describe(error));
          if (!opened) failed(error);
          return;
        }
        reason = describe(error);
      } finally {
        clearTimeout(this.watchdog);
      }
      if (this.stopped) return;
      this.on.status("reconnecting", reason);
      const wait = Math.min(250 * 2 ** attempt, MAX_BACKOFF_MS);
      attempt += 1;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /** (Re)starts the silence watchdog of the open attempt. */
  private arm(abort: AbortController): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => abort.abort(), SILENCE_MS);
  }
}
