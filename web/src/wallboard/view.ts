// Draws the board: the queues table, one table of agents per MRD (with the supervisor's
// actions), and the tasks in progress. Rows are kept, not rebuilt, so a control keeps its focus
// while the figures around it change; every time shown is redrawn from data already held.
import type { Mrd, ReasonCode } from "../gen/switchboard/v1/admin_pb";
import { LogoutAction } from "../gen/switchboard/v1/admin_pb";
import { AgentState } from "../gen/switchboard/v1/routing_pb";
import { queueKey, type AgentMrdView, type Board, type QueueRef, type TaskView } from "./board";
import { h, setAttr, setText, syncRows } from "./dom";
import { AGENT_STATES, agentStateCode, agentStateName, duration, taskStateCode, taskStateName } from "./format";

/** What the agents' rows ask of the page. */
export interface AgentActions {
  notReady(agentId: string, mrd: string, reasonCode: string): Promise<void>;
  logOut(agentId: string, mrd: string): Promise<void>;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export class BoardView {
  private mrds = new Map<string, Mrd>();
  private reasons: ReasonCode[] = [];
  private readonly mrdSections = new Map<string, { section: HTMLElement; body: HTMLElement; empty: HTMLElement }>();

  constructor(
    private readonly board: Board,
    private readonly actions: AgentActions,
    private readonly el: {
      queues: HTMLElement;
      states: HTMLElement;
      statesHead: HTMLElement;
      agents: HTMLElement;
      agentsHeading: HTMLElement;
      tasks: HTMLElement;
      tasksEmpty: HTMLElement;
      tasksHeading: HTMLElement;
    },
  ) {
    el.statesHead.replaceChildren(
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "MRD"),
        ...AGENT_STATES.map((state) => h("th", { scope: "col", class: "num" }, agentStateName(state))),
        h("th", { scope: "col", class: "num" }, "Logged in"),
      ),
    );
  }

  /** The MRDs and the NOT_READY reason codes, from the lists. */
  configure(mrds: readonly Mrd[], notReadyReasons: readonly ReasonCode[]): void {
    this.mrds = new Map(mrds.map((m) => [m.name, m]));
    this.reasons = [...notReadyReasons];
    for (const select of this.el.agents.querySelectorAll<HTMLSelectElement>("select[data-field=reason]")) {
      this.fillReasons(select);
    }
  }

  render(nowMs: number): void {
    this.renderQueues(nowMs);
    this.renderAgents(nowMs);
    this.renderTasks(nowMs);
  }

  private renderQueues(nowMs: number): void {
    const queues = [...this.board.queues.values()].sort((a, b) => byName(a.mrd, b.mrd) || byName(a.name, b.name));
    syncRows(
      this.el.queues,
      queues,
      (q) => queueKey(q.mrd, q.name),
      (q) =>
        h(
          "tr",
          { "data-mrd": q.mrd, "data-queue": q.name },
          h("th", { scope: "row" }, q.name),
          h("td", {}, q.mrd),
          h("td", { class: "num big", "data-field": "waiting" }),
          h("td", { class: "num big", "data-field": "oldest" }),
          h("td", { class: "num", "data-field": "sl" }),
        ),
      (row, q: QueueRef) => {
        const cells = row.cells;
        const waiting = this.board.waiting(q.mrd, q.name);
        setText(cells[2]!, String(waiting.count));
        const oldest = cells[3]!;
        setAttr(oldest, "data-queued-ms", waiting.oldestQueuedMs === undefined ? "" : String(waiting.oldestQueuedMs));
        setText(oldest, waiting.oldestQueuedMs === undefined ? "—" : duration(nowMs - waiting.oldestQueuedMs));
        const sl = this.board.serviceLevels.get(queueKey(q.mrd, q.name));
        const slCell = cells[4]!;
        setAttr(slCell, "data-answered", String(sl?.answered ?? 0));
        setAttr(slCell, "data-within", String(sl?.within ?? 0));
        setText(
          slCell,
          sl && sl.answered > 0
            ? `${Math.round((100 * sl.within) / sl.answered)}% (${sl.within} of ${sl.answered})`
            : "— (none answered)",
        );
        row.classList.toggle("waiting", waiting.count > 0);
      },
    );
  }

  /** Every MRD configured or with an agent on it, by name. */
  private mrdNames(): string[] {
    return [...new Set([...this.mrds.keys(), ...this.board.agentMrds()])].sort(byName);
  }

  private renderStates(names: readonly string[]): void {
    syncRows(
      this.el.states,
      names,
      (name) => name,
      (name) =>
        h(
          "tr",
          { "data-mrd": name },
          h("th", { scope: "row" }, name),
          ...AGENT_STATES.map((state) => h("td", { class: "num big", "data-state": agentStateCode(state) })),
          h("td", { class: "num", "data-field": "total" }),
        ),
      (row, name) => {
        const counts = new Map<AgentState, number>();
        const agents = this.board.agentsOn(name);
        for (const a of agents) counts.set(a.state, (counts.get(a.state) ?? 0) + 1);
        AGENT_STATES.forEach((state, i) => {
          const n = counts.get(state) ?? 0;
          const cell = row.cells[i + 1]!;
          setText(cell, String(n));
          setAttr(cell, "data-count", String(n));
        });
        setText(row.cells[AGENT_STATES.length + 1]!, String(agents.length));
      },
    );
  }

  private renderAgents(nowMs: number): void {
    const names = this.mrdNames();
    this.renderStates(names);
    for (const [name, parts] of this.mrdSections) {
      if (!names.includes(name)) {
        parts.section.remove();
        this.mrdSections.delete(name);
      }
    }
    names.forEach((name, index) => {
      let parts = this.mrdSections.get(name);
      if (!parts) {
        parts = this.mrdSection(name);
        this.mrdSections.set(name, parts);
      }
      const current = this.el.agents.children[index];
      if (current !== parts.section) this.el.agents.insertBefore(parts.section, current ?? null);
      const agents = this.board.agentsOn(name);
      parts.empty.hidden = agents.length > 0;
      syncRows(
        parts.body,
        agents,
        (a) => a.agentId,
        (a) => this.agentRow(a),
        (row, a) => this.updateAgentRow(row, a, nowMs),
        this.el.agentsHeading,
      );
    });
  }

  private mrdSection(name: string) {
    const id = `mrd-${cssId(name)}`;
    const body = h("tbody");
    const empty = h("p", { class: "empty" }, `No agent is logged in on ${name}.`);
    const section = h(
      "section",
      { class: "mrd", "aria-labelledby": `${id}-h`, "data-mrd": name },
      h("h3", { id: `${id}-h` }, `MRD ${name}`),
      h(
        "table",
        { class: "agents" },
        h("caption", {}, `Agents on ${name}: state, reason, tasks and time in state, with actions`),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Agent"),
            h("th", { scope: "col" }, "State"),
            h("th", { scope: "col" }, "Reason"),
            h("th", { scope: "col", class: "num" }, "Tasks"),
            h("th", { scope: "col", class: "num" }, "In state"),
            h("th", { scope: "col" }, "Actions"),
          ),
        ),
        body,
      ),
      empty,
    );
    return { section, body, empty };
  }

  private agentRow(a: AgentMrdView): HTMLTableRowElement {
    const select = h("select", { "data-field": "reason", "aria-label": `Not ready reason for ${a.agentId} on ${a.mrd}` });
    this.fillReasons(select);
    const notReady = h("button", { type: "button", "data-action": "not-ready", "aria-label": `Set ${a.agentId} not ready on ${a.mrd}` }, "Not ready");
    const logOut = h("button", { type: "button", "data-action": "log-out", "aria-label": `Log out ${a.agentId} from ${a.mrd}` }, "Log out");
    const busy = (on: boolean) => {
      // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
      for (const b of [notReady, logOut]) setAttr(b, "aria-disabled", String(on));
    };
    const run = async (action: () => Promise<void>) => {
      if (notReady.getAttribute("aria-disabled") === "true") return;
      busy(true);
      try {
        await action();
      } finally {
        busy(false);
      }
    };
    notReady.addEventListener("click", () => void run(() => this.actions.notReady(a.agentId, a.mrd, select.value)));
    logOut.addEventListener("click", () => {
      const now = this.board.agentOn(a.agentId, a.mrd);
      if (now && (now.activeTasks > 0 || now.state === AgentState.RESERVED)) {
        const mrd = this.mrds.get(a.mrd);
        const fate = mrd?.logoutAction === LogoutAction.REQUEUE ? "go back to their queues" : "close";
        if (!window.confirm(`${a.agentId} has work on ${a.mrd}: an offer is rerouted and its tasks ${fate}. Log out?`)) return;
      }
      void run(() => this.actions.logOut(a.agentId, a.mrd));
    });
    return h(
      "tr",
      { "data-agent": a.agentId, "data-mrd": a.mrd },
      h("th", { scope: "row" }, a.agentId),
      h("td", { "data-field": "state" }, h("span", { class: "state" })),
      h("td", { "data-field": "reason" }),
      h("td", { class: "num", "data-field": "tasks" }),
      h("td", { class: "num", "data-field": "since" }),
      h("td", { class: "actions" }, select, notReady, logOut),
    );
  }

  private updateAgentRow(row: HTMLTableRowElement, a: AgentMrdView, nowMs: number): void {
    const cells = row.cells;
    const code = agentStateCode(a.state);
    setAttr(row, "data-state", code);
    const badge = cells[1]!.firstElementChild!;
    setAttr(badge, "data-state", code);
    setText(badge, agentStateName(a.state));
    setText(cells[2]!, a.reason ? this.reasonLabel(a.reason) : "");
    setText(cells[3]!, String(a.activeTasks));
    const since = cells[4]!;
    setAttr(since, "data-since-ms", String(a.sinceMs));
    setAttr(since, "data-exact", String(a.sinceExact));
    setText(since, `${a.sinceExact ? "" : "≥ "}${duration(nowMs - a.sinceMs)}`);
    setAttr(
      since,
      "title",
      a.sinceExact ? "" : "The state began before this wallboard opened; counted from when it opened.",
    );
  }

  private reasonLabel(code: string): string {
    const known = this.reasons.find((r) => r.code === code);
    return known && known.label && known.label !== code ? `${known.label} (${code})` : code;
  }

  private fillReasons(select: HTMLSelectElement): void {
    const kept = select.value;
    select.replaceChildren(
      h("option", { value: "" }, "No reason"),
      ...this.reasons.map((r) => h("option", { value: r.code }, r.label || r.code)),
    );
    if (this.reasons.some((r) => r.code === kept)) select.value = kept;
  }

  private renderTasks(nowMs: number): void {
    const tasks = this.board.inProgress();
    this.el.tasksEmpty.hidden = tasks.length > 0;
    syncRows(
      this.el.tasks,
      tasks,
      (t) => t.id,
      (t) =>
        h(
          "tr",
          { "data-task": t.id },
          h("th", { scope: "row", title: t.id }, shortId(t.id)),
          h("td", {}, t.mrd),
          h("td", {}, t.queue),
          h("td", { "data-field": "agent" }),
          h("td", { "data-field": "state" }, h("span", { class: "state" })),
          h("td", { class: "num", "data-field": "age" }),
        ),
      (row, t: TaskView) => {
        const cells = row.cells;
        const others = t.participants.filter((p) => p !== t.agent);
        setText(cells[3]!, others.length ? `${t.agent} + ${others.join(", ")}` : t.agent);
        setAttr(cells[3]!, "data-agent", t.agent);
        const code = taskStateCode(t.state);
        setAttr(row, "data-state", code);
        const badge = cells[4]!.firstElementChild!;
        setAttr(badge, "data-state", code);
        setText(badge, taskStateName(t.state));
        setAttr(cells[5]!, "data-created-ms", String(t.createdMs));
        setText(cells[5]!, duration(nowMs - t.createdMs));
      },
      this.el.tasksHeading,
    );
  }
}

/** A task id as a wall can show it: a UUID by its first group (the whole id in the title). */
const shortId = (id: string): string => (/^[0-9a-f]{8}-[0-9a-f-]{27}$/i.test(id) ? id.slice(0, 8) : id);

/** A name as a piece of an element id. */
const cssId = (name: string): string => name.replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
