// The supervisor wallboard: sign in with a supervisor account, then follow routing live through
// one watch (see live.ts) and draw it (view.ts). A 1 s local timer redraws the times from data
// already held; nothing is polled from the server.
//
// `?sl=N` sets the service level's threshold to N seconds (default 20).
import { ReasonCategory } from "../gen/switchboard/v1/admin_pb";
import { AgentState } from "../gen/switchboard/v1/routing_pb";
import { connect, describe } from "../shared/api";
import { Board } from "./board";
import { clock } from "./format";
import { Live } from "./live";
import { Session } from "./session";
import { BoardView } from "./view";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page lacks #${id}`);
  return el as T;
};

const MAX_ALERTS = 6;

const alerts = $("alerts");
const clearAlerts = $<HTMLButtonElement>("clear-alerts");
const actionStatus = $("action-status");
const connection = $("connection");
const form = $<HTMLFormElement>("sign-in");
const boardEl = $("board");
const signOutButton = $<HTMLButtonElement>("sign-out");
const who = $("who");

/** Shows a refusal or failure in the alert region (the newest last, a few kept). */
function alert(text: string): void {
  const item = document.createElement("p");
  item.textContent = `${clock(Date.now())} ${text}`;
  alerts.append(item);
  while (alerts.childElementCount > MAX_ALERTS) alerts.firstElementChild?.remove();
  clearAlerts.hidden = false;
}
clearAlerts.addEventListener("click", () => {
  alerts.replaceChildren();
  clearAlerts.hidden = true;
  if (form.hidden) $("queues-h").focus();
  else $("account").focus();
});

const thresholdSecs = (() => {
  const asked = Number(new URLSearchParams(location.search).get("sl"));
  return Number.isFinite(asked) && asked > 0 ? asked : 20;
})();
const openedMs = Date.now();
$("sl-definition").textContent =
  `Service level: the share of a queue's tasks answered (offer accepted) within ${thresholdSecs} s of ` +
  `arriving, among its tasks answered since this wallboard opened at ${clock(openedMs)}. ` +
  `Each task counts once, at its first acceptance. Oldest wait: how long the longest-waiting ` +
  `task has been in its queue (since it last went back in).`;

const session = new Session(
  () => api,
  (error) => {
    alert(`Signed out: the session could not be renewed (${describe(error)})`);
    stop();
  },
);
const api = connect(location.origin, session.token);

const board = new Board(thresholdSecs * 1000);
const view = new BoardView(
  board,
  {
    notReady: (agentId, mrd, reasonCode) =>
      act(`Set ${agentId} not ready on ${mrd}${reasonCode ? ` (${reasonCode})` : ""}`, () =>
        api.routing.changeAgentState({ agentId, mrd, state: AgentState.NOT_READY, reasonCode }),
      ),
    logOut: (agentId, mrd) =>
      act(`Log ${agentId} out of ${mrd}`, () =>
        api.routing.changeAgentState({ agentId, mrd, state: AgentState.LOGOUT }),
      ),
  },
  {
    queues: $("queues"),
    states: $("states"),
    statesHead: $("states-head"),
    agents: $("mrds"),
    agentsHeading: $("agents-h"),
    tasks: $("tasks"),
    tasksEmpty: $("tasks-empty"),
    tasksHeading: $("tasks-h"),
  },
);

/** Runs a supervisor action: its outcome in the status line, a refusal in the alert region. */
async function act(what: string, call: () => Promise<unknown>): Promise<void> {
  actionStatus.textContent = `${what}…`;
  try {
    await call();
    actionStatus.textContent = `${what}: done.`;
  } catch (error) {
    actionStatus.textContent = `${what}: refused.`;
    alert(`${what}: ${describe(error)}`);
  }
}

let drawQueued = false;
function draw(): void {
  if (drawQueued) return;
  drawQueued = true;
  // One redraw for a burst of events.
  setTimeout(() => {
    drawQueued = false;
    view.render(Date.now());
  }, 0);
}

const live = new Live(api, board, {
  configured(mrds, queues, reasons) {
    // How many times the lists were read: 1 while every reconnection resumed the watch.
    connection.dataset.lists = String(Number(connection.dataset.lists ?? 0) + 1);
    for (const m of mrds) board.addQueue(m.name, "default");
    for (const q of queues) board.addQueue(q.mrd, q.name);
    view.configure(
      mrds,
      reasons.filter((r) => r.category === ReasonCategory.NOT_READY),
    );
  },
  changed: draw,
  status(text, isLive) {
    connection.textContent = text;
    connection.dataset.live = String(isLive);
  },
  alert,
  async reauthenticate() {
    try {
      await session.renew();
      return true;
    } catch (error) {
      alert(`Signed out: ${describe(error)}`);
      stop();
      return false;
    }
  },
});

function tick(): void {
  $("clock").textContent = clock(Date.now());
  if (!boardEl.hidden) view.render(Date.now());
}
tick();
setInterval(tick, 1000);

function start(): void {
  form.hidden = true;
  boardEl.hidden = false;
  signOutButton.hidden = false;
  who.textContent = `Signed in as ${session.principal}`;
  live.start();
  $("queues-h").focus();
}

function stop(): void {
  live.stop();
  boardEl.hidden = true;
  signOutButton.hidden = true;
  form.hidden = false;
  who.textContent = "";
  connection.textContent = "Signed out";
  connection.dataset.live = "false";
  $("account").focus();
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const account = ($("account") as HTMLInputElement).value.trim();
  const secret = $<HTMLInputElement>("secret");
  const button = form.querySelector("button")!;
  if (button.getAttribute("aria-disabled") === "true") return;
  button.setAttribute("aria-disabled", "true");
  connection.textContent = "Signing in…";
  session
    .signIn(account, secret.value)
    .then(() => {
      secret.value = "";
      start();
    })
    .catch((error: unknown) => {
      connection.textContent = "Signed out";
      alert(`Sign-in refused: ${describe(error)}`);
      secret.focus();
    })
    .finally(() => button.removeAttribute("aria-disabled"));
});

signOutButton.addEventListener("click", () => {
  void session.signOut();
  stop();
});

// A page kept in the back-forward cache closes its watch, and opens it again when shown.
window.addEventListener("pagehide", () => live.stop());
window.addEventListener("pageshow", (e) => {
  if (e.persisted && session.signedIn) live.start();
});
