// The desktop's page: shows what `DesktopState` holds and passes what the person does to the
// controller's handlers. Lists are updated in place, keyed by action name and task id, so a
// button keeps its focus and an agent id being typed survives the events that arrive.
import { TaskState, type TaskStatus } from "../gen/switchboard/v1/routing_pb";
import { byId, el, setText } from "../shared/dom";
import type { Activity } from "./activity";
import { accepts, type ServerView } from "./servers";
import { agentStateLabel, taskStateLabel, type DesktopState } from "./state";

export interface Handlers {
  signIn(agentId: string, password: string): void;
  signOut(): void;
  action(name: string): void;
  ready(): void;
  notReady(reasonCode: string): void;
  accept(): void;
  reject(): void;
  wrapUp(taskId: string): void;
  close(taskId: string): void;
  transfer(taskId: string, agentId: string): void;
  conference(taskId: string, agentId: string): void;
}

export interface Diagnostics {
  server?: string;
  clientId?: string;
  lastRevision?: bigint;
  resumedFrom?: bigint;
  renewedAt?: Date;
}

export class DesktopView {
  private readonly signInPanel = byId("sign-in-panel");
  private readonly signInForm = byId<HTMLFormElement>("sign-in");
  private readonly signInButton = byId<HTMLButtonElement>("sign-in-button");
  private readonly agentIdInput = byId<HTMLInputElement>("agent-id");
  private readonly passwordInput = byId<HTMLInputElement>("password");
  private readonly takeOver = byId("take-over");
  private readonly desk = byId("desk");
  private readonly signOutButton = byId<HTMLButtonElement>("sign-out");
  private readonly connection = byId("connection");
  private readonly actions = byId("actions");
  private readonly mrdStates = byId("mrd-states");
  private readonly reason = byId<HTMLSelectElement>("reason");
  private readonly offerPanel = byId("offer-panel");
  private readonly countdown = byId("offer-countdown");
  private readonly tasks = byId("tasks");
  private readonly activity = byId("activity");
  private readonly announcer = byId("announcer");
  /** The offer last announced, so each is said once. */
  private announcedOffer: string | undefined;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private deadline: number | undefined;
  private handlers: Handlers | undefined;

  /** Wires the page's controls to `handlers`. */
  bind(handlers: Handlers): void {
    this.handlers = handlers;
    this.signInForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const password = this.passwordInput.value;
      this.passwordInput.value = "";
      handlers.signIn(this.agentIdInput.value.trim(), password);
    });
    this.signOutButton.addEventListener("click", () => handlers.signOut());
    byId("ready").addEventListener("click", () => handlers.ready());
    byId("not-ready").addEventListener("click", () => handlers.notReady(this.reason.value));
    byId("accept").addEventListener("click", () => handlers.accept());
    byId("reject").addEventListener("click", () => handlers.reject());
  }

  // ----- signing in ----------------------------------------------------------------------

  /** The sign-in form, enabled or busy. */
  showSignIn(busy: boolean): void {
    if (!busy) this.activity.replaceChildren();
    this.signInPanel.hidden = false;
    this.desk.hidden = true;
    this.signOutButton.hidden = true;
    this.takeOver.hidden = true;
    this.signInButton.disabled = busy;
    this.agentIdInput.disabled = busy;
    this.passwordInput.disabled = busy;
    this.stopCountdown();
  }

  /** Asks whether to take over the agent's existing session. */
  askTakeOver(message: string): Promise<boolean> {
    this.takeOver.hidden = false;
    setText(byId("take-over-message"), message);
    const confirm = byId<HTMLButtonElement>("take-over-confirm");
    const cancel = byId<HTMLButtonElement>("take-over-cancel");
    confirm.focus();
    return new Promise((resolve) => {
      const done = (answer: boolean) => {
        confirm.removeEventListener("click", yes);
        cancel.removeEventListener("click", no);
        this.takeOver.hidden = true;
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      confirm.addEventListener("click", yes);
      cancel.addEventListener("click", no);
    });
  }

  /** The desk of a signed-in agent. */
  showDesk(agentId: string): void {
    this.signInPanel.hidden = true;
    this.desk.hidden = false;
    this.signOutButton.hidden = false;
    setText(byId("agent-name"), agentId);
  }

  /** The connection's state, in the status region. */
  setConnection(text: string, state: string): void {
    setText(this.connection, text);
    this.connection.dataset.state = state;
  }

  // ----- servers and diagnostics ---------------------------------------------------------

  showServers(servers: ServerView[], chosen: string | undefined): void {
    const rows = servers.map((server) => {
      const status = server.status;
      const state =
        status === undefined
          ? `unreachable (${server.error ?? "no answer"})`
          : accepts(server)
            ? "in service"
            : "not accepting clients";
      const isChosen = server.url === chosen;
      return el(
        "tr",
        { "data-url": server.url, "data-chosen": isChosen ? "true" : "false" },
        el("td", {}, server.url),
        el("td", {}, state),
        el("td", { class: "number" }, status === undefined ? "-" : String(status.clientCount)),
        el("td", {}, isChosen ? "chosen" : ""),
      );
    });
    byId("servers").replaceChildren(...rows);
  }

  setDiagnostics(d: Diagnostics): void {
    setText(byId("diag-server"), d.server ?? "-");
    setText(byId("diag-client"), d.clientId || "-");
    setText(byId("diag-revision"), d.lastRevision === undefined ? "-" : String(d.lastRevision));
    setText(byId("diag-resumed"), d.resumedFrom === undefined ? "-" : String(d.resumedFrom));
    setText(byId("diag-renewed"), d.renewedAt === undefined ? "-" : d.renewedAt.toLocaleTimeString());
  }

  setReasonCodes(codes: { code: string; label: string }[]): void {
    this.reason.replaceChildren(
      el("option", { value: "" }, "No reason"),
      ...codes.map((c) => el("option", { value: c.code }, c.label ? `${c.label} (${c.code})` : c.code)),
    );
  }

  // ----- the desk ------------------------------------------------------------------------

  /** Adds a line to the recent activity, newest first; the list keeps the last 50. */
  addActivity(activity: Activity): void {
    const time = new Date(activity.at ?? Date.now()).toLocaleTimeString();
    this.activity.prepend(
      el("li", { "data-revision": String(activity.revision) }, el("time", {}, time), activity.text),
    );
    while (this.activity.childElementCount > 50) this.activity.lastElementChild!.remove();
  }

  /** Says `text` to screen readers, politely. */
  announce(text: string): void {
    this.announcer.textContent = text;
  }

  render(state: DesktopState): void {
    setText(byId("view-state"), state.viewState || "-");
    setText(byId("model-name"), state.model || "-");
    this.renderActions(state);
    this.renderRouting(state);
    this.renderOffer(state);
    this.renderTasks(state);
  }

  /** One button per action of the model, enabled as the session's view says. */
  private renderActions(state: DesktopState): void {
    const existing = new Map<string, HTMLButtonElement>();
    for (const button of this.actions.querySelectorAll<HTMLButtonElement>("button[data-action]")) {
      existing.set(button.dataset.action!, button);
    }
    const ordered: HTMLButtonElement[] = [];
    for (const [name, enabled] of state.actions) {
      let button = existing.get(name);
      existing.delete(name);
      if (button === undefined) {
        button = el("button", { type: "button", "data-action": name }, name);
        button.addEventListener("click", () => this.handlers?.action(name));
      }
      button.disabled = !enabled;
      ordered.push(button);
    }
    for (const gone of existing.values()) gone.remove();
    ordered.forEach((button, i) => {
      if (this.actions.children[i] !== button) this.actions.insertBefore(button, this.actions.children[i] ?? null);
    });
  }

  private renderRouting(state: DesktopState): void {
    const items = [...state.mrds].map(([mrd, s]) => {
      const reason = s.reasonCode ? ` (${s.reasonCode})` : "";
      const tasks = s.activeTasks > 0 ? `, ${s.activeTasks} task${s.activeTasks > 1 ? "s" : ""}` : "";
      return el("li", { "data-mrd": mrd }, el("strong", {}, mrd), `: ${agentStateLabel(s.state)}${reason}${tasks}`);
    });
    if (items.length === 0) items.push(el("li", { class: "muted" }, "Not logged in for routing."));
    this.mrdStates.replaceChildren(...items);
  }

  private renderOffer(state: DesktopState): void {
    const offer = state.offer;
    this.offerPanel.hidden = offer === undefined;
    if (offer === undefined) {
      this.announcedOffer = undefined;
      this.offerPanel.removeAttribute("data-task-id");
      this.stopCountdown();
      return;
    }
    this.offerPanel.dataset.taskId = offer.taskId;
    if (this.announcedOffer !== offer.taskId) {
      this.announcedOffer = offer.taskId;
      this.announce(`Incoming offer: task ${offer.taskId}. Accept or reject it in the offer panel.`);
    }
    const where = offer.mrd ? ` on ${offer.mrd}${offer.queue ? `, queue ${offer.queue}` : ""}` : "";
    setText(byId("offer-details"), `Task ${offer.taskId}${where}`);
    this.deadline = offer.deadline;
    if (offer.deadline === undefined) {
      this.stopCountdown();
      setText(this.countdown, "unknown");
    } else {
      this.countdown.dataset.deadline = String(offer.deadline);
      this.tick();
      this.ticker ??= setInterval(() => this.tick(), 250);
    }
  }

  private tick(): void {
    if (this.deadline === undefined) return;
    const left = Math.ceil((this.deadline - Date.now()) / 1000);
    setText(this.countdown, left > 0 ? `${left} s` : "expiring");
  }

  private stopCountdown(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.deadline = undefined;
    delete this.countdown.dataset.deadline;
  }

  private renderTasks(state: DesktopState): void {
    const existing = new Map<string, HTMLLIElement>();
    for (const item of this.tasks.querySelectorAll<HTMLLIElement>("li[data-task-id]")) {
      existing.set(item.dataset.taskId!, item);
    }
    for (const [taskId, task] of state.tasks) {
      let item = existing.get(taskId);
      existing.delete(taskId);
      if (item === undefined) {
        item = this.taskItem(taskId);
        this.tasks.append(item);
      }
      this.updateTaskItem(item, task, state.agentId);
    }
    for (const gone of existing.values()) gone.remove();
    byId("no-tasks").hidden = state.tasks.size > 0;
  }

  /** A task's entry, built once: its title, fields, and its controls. */
  private taskItem(taskId: string): HTMLLIElement {
    const inputId = `agent-for-${taskId}`;
    const target = el("input", { id: inputId, class: "target", autocomplete: "off", spellcheck: "false" });
    const button = (label: string, name: string, run: () => void) => {
      const b = el("button", { type: "button", "data-task-action": name }, label);
      b.addEventListener("click", run);
      return b;
    };
    const other = () => target.value.trim();
    const item = el(
      "li",
      { class: "task", "data-task-id": taskId, "aria-labelledby": `title-${taskId}` },
      el("h3", { id: `title-${taskId}` }, `Task ${taskId}`),
      el("p", { class: "fields" }),
      el(
        "div",
        { class: "buttons" },
        button("Wrap up", "wrap-up", () => this.handlers?.wrapUp(taskId)),
        button("Close", "close", () => this.handlers?.close(taskId)),
        el("label", { for: inputId }, "Other agent id"),
        target,
        button("Transfer", "transfer", () => this.handlers?.transfer(taskId, other())),
        button("Conference", "conference", () => this.handlers?.conference(taskId, other())),
      ),
    );
    return item;
  }

  private updateTaskItem(item: HTMLLIElement, task: TaskStatus, me: string): void {
    item.dataset.state = TaskState[task.state] ?? String(task.state);
    const role = task.ownerAgentId === me ? "owner" : `participant (owner ${task.ownerAgentId})`;
    const others = task.participantAgentIds.filter((a) => a !== me);
    const attributes = Object.entries(task.attributes).map(([k, v]) => `${k}: ${v}`).join(", ");
    const parts = [
      taskStateLabel(task.state),
      `${task.mrd}/${task.queue}`,
      `you are ${role}`,
      others.length > 0 ? `with ${others.join(", ")}` : "",
      attributes,
    ].filter((p) => p !== "");
    setText(item.querySelector(".fields")!, parts.join(" · "));
    const active = task.state === TaskState.ACTIVE;
    const buttons = item.querySelectorAll<HTMLButtonElement>("button[data-task-action]");
    for (const b of buttons) {
      const action = b.dataset.taskAction;
      b.disabled =
        action === "wrap-up"
          ? !(active || task.state === TaskState.PAUSED)
          : action === "close"
            ? false
            : !active;
    }
  }
}
