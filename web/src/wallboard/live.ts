// Keeps the board live: the initial lists, then one routing watch from the lowest listing's
// revision + 1. A watch that ends is reopened from the last revision seen + 1 (events missed are
// replayed); OUT_OF_RANGE (the journal no longer keeps that revision) relists first. Nothing is
// polled: the only timer here is the wait before reopening a broken watch.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Mrd, Queue, ReasonCode } from "../gen/switchboard/v1/admin_pb";
import { describe, isRefusal, type Services } from "../shared/api";
import type { Board } from "./board";

export interface LiveHooks {
  /** The configuration the lists gave (MRDs, queues, reason codes). */
  configured(mrds: Mrd[], queues: Queue[], reasons: ReasonCode[]): void;
  /** The board changed: draw it. */
  changed(): void;
  /** The state of the feed, for a status line. */
  status(text: string, live: boolean): void;
  /** A refusal or failure a person must see. */
  alert(text: string): void;
  /** The server said UNAUTHENTICATED: renew the token; false when the session is over. */
  reauthenticate(): Promise<boolean>;
}

const PAGE = 1000;
const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 10_000;

export class Live {
  private controller: AbortController | undefined;

  constructor(
    private readonly api: Services,
    private readonly board: Board,
    private readonly hooks: LiveHooks,
  ) {}

  start(): void {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    void this.run(controller.signal);
  }

  stop(): void {
    this.controller?.abort();
    this.controller = undefined;
  }

  /** Reads everything afresh; answers the revision the watch must start after. The board is
   * replaced only once every page is in, so it never shows half a listing. */
  private async load(signal: AbortSignal): Promise<bigint> {
    const { admin, routing } = this.api;
    const [mrds, queues, reasons] = await Promise.all([
      admin.listMrds({}, { signal }),
      admin.listQueues({}, { signal }),
      admin.listReasonCodes({}, { signal }),
    ]);
    const taskPages = [];
    let token = "";
    do {
      const page = await routing.listTasks({ pageSize: PAGE, pageToken: token }, { signal });
      taskPages.push(page);
      token = page.nextPageToken;
    } while (token);
    const agentPages = [];
    do {
      const page = await routing.listAgentStates({ pageSize: PAGE, pageToken: token }, { signal });
      agentPages.push(page);
      token = page.nextPageToken;
    } while (token);

    const now = Date.now();
    this.board.reset();
    this.hooks.configured(mrds.mrds, queues.queues, reasons.reasonCodes);
    for (const page of taskPages) this.board.listTasks(page.tasks, page.revision, now);
    for (const page of agentPages) this.board.listAgents(page.agents, page.revision, now);
    const revisions = [...taskPages, ...agentPages].map((p) => p.revision);
    return revisions.reduce((low, r) => (r < low ? r : low), revisions[0]!);
  }

  private async run(signal: AbortSignal): Promise<void> {
    let from: bigint | undefined;
    let retry = FIRST_RETRY_MS;
    while (!signal.aborted) {
      try {
        if (from === undefined) {
          this.hooks.status("Loading…", false);
          const low = await this.load(signal);
          from = low + 1n;
          this.hooks.changed();
        }
        const stream = this.api.routing.watchRoutingEvents(
          { startRevision: from },
          { signal, onHeader: () => this.hooks.status("Live", true) },
        );
        for await (const frame of stream) {
          retry = FIRST_RETRY_MS;
          if (frame.frame.case === "event") {
            const event = frame.frame.value;
            const applied = this.board.apply(event);
            from = event.revision + 1n;
            if (applied.unknownTaskId) void this.fetchTask(applied.unknownTaskId, signal);
            this.hooks.changed();
          } else if (frame.frame.case === "progress") {
            from = frame.frame.value.revision + 1n;
          }
        }
        this.hooks.status("The watch ended; reopening…", false);
      } catch (error) {
        if (signal.aborted) return;
        const code = error instanceof ConnectError ? error.code : undefined;
        if (code === Code.OutOfRange) {
          // The journal no longer holds the revision asked for: start over from fresh lists.
          this.hooks.status("Missed too much; reading everything again…", false);
          from = undefined;
          continue;
        }
        if (code === Code.Unauthenticated) {
          // The token expired or was revoked: renew it and reopen (the page signs out if not).
          if (!(await this.hooks.reauthenticate())) return;
        } else if (code === Code.PermissionDenied) {
          // Retrying cannot help: this account may not read what a wallboard shows.
          this.hooks.alert(`Reading the board: ${describe(error)}`);
          this.hooks.status("Stopped", false);
          return;
        } else if (isRefusal(error)) {
          this.hooks.alert(`Reading the board: ${describe(error)}`);
        }
        this.hooks.status(`Disconnected (${describe(error)}); retrying…`, false);
      }
      await pause(retry, signal);
      retry = Math.min(retry * 2, LAST_RETRY_MS);
    }
  }

  /** A task a live event named that no list had (it was missed): read it once. */
  private async fetchTask(taskId: string, signal: AbortSignal): Promise<void> {
    try {
      const r = await this.api.routing.getTaskState({ taskId }, { signal });
      if (r.task) {
        this.board.putTask(r.task, r.revision, Date.now());
        this.hooks.changed();
      }
    } catch (error) {
      if (!signal.aborted && !(error instanceof ConnectError && error.code === Code.NotFound)) {
        this.hooks.alert(`Reading task ${taskId}: ${describe(error)}`);
      }
    }
  }
}

const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
