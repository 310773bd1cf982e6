// The agent desktop in a real headless Chromium against a real server: offers reach the right
// page and are answered, tasks are transferred, conferenced, wrapped up and closed, a page
// that vanishes loses its offer to another agent after the grace period, a page cannot act
// for another agent, and a page that loses its network resumes its feed and keeps its offer.
// Every step is checked on the page and in the server's state over gRPC.
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import type { Page } from "playwright-core";
import { AgentState, TaskState, CloseReason } from "../src/gen/switchboard/v1/routing_pb";
import {
  channel,
  configureContactCenter,
  freePort,
  launchBrowser,
  screenshotPath,
  startProxy,
  startServer,
  waitFor,
  waitForText,
  type Browser,
  type Channel,
  type ContactCenter,
  type Server,
  type ServerOptions,
} from "./harness";

/** Offers and wrap-up last long enough that only the test moves a task on. */
const MRD = { offerTimeoutSeconds: 600, wrapUpTimeoutSeconds: 600, maxTasks: 2 };

interface World {
  server: Server;
  center: ContactCenter;
  channel: Channel;
  browser: Browser;
}

async function world(t: TestContext, options: ServerOptions = {}): Promise<World> {
  const server = await startServer(t, options);
  const center = await configureContactCenter(server, { mrd: MRD, agents: ["ana", "ben"] });
  return { server, center, channel: await channel(server, center), browser: await launchBrowser(t) };
}

/** Opens the desktop at `url` and signs `agentId` in through its form. */
async function signIn(w: World, agentId: string, url = w.server.url): Promise<Page> {
  const page = await w.browser.newPage(url);
  await page.getByLabel("Agent id").fill(agentId);
  await page.getByLabel("Password").fill(w.center.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await waitForText(page.getByRole("status"), `Connected to`);
  // The model's actions arrive from the session's view: log the session in with its button.
  const login = page.locator('#actions button[data-action="session.login"]');
  await login.waitFor();
  return page;
}

/** Logs the session in (the model's `session.login` button) and makes the agent Ready; checks
 * the page and the server. */
async function goReady(w: World, page: Page, agentId: string): Promise<void> {
  const login = page.locator('#actions button[data-action="session.login"]');
  await waitFor("session.login to be enabled", () => login.isEnabled());
  await login.click();
  await waitFor("session.logout to be enabled once logged in", () =>
    page.locator('#actions button[data-action="session.logout"]').isEnabled(),
  );
  await page.getByRole("button", { name: "Ready", exact: true }).click();
  await waitForText(page.locator("#mrd-states"), `${w.center.mrd}: Ready`);
  await waitFor(`${agentId} READY on the server`, async () => {
    const { agent } = await w.server.admin.routing.getAgentState({ agentId });
    return agent?.mrds.some((m) => m.state === AgentState.READY);
  });
}

async function task(w: World, taskId: string) {
  const { task } = await w.server.admin.routing.getTaskState({ taskId });
  assert.ok(task, `task ${taskId} is known`);
  return task;
}

/** Waits until the server says `what` of the task. */
async function serverSays(
  w: World,
  taskId: string,
  what: string,
  holds: (t: Awaited<ReturnType<typeof task>>) => boolean,
) {
  return waitFor(`task ${taskId}: ${what}`, async () => {
    const current = await task(w, taskId);
    return holds(current) ? current : undefined;
  });
}

/** The page shows an offer of `taskId` with a countdown that moves. */
async function showsOffer(page: Page, taskId: string): Promise<void> {
  const panel = page.locator("#offer-panel");
  await panel.waitFor({ state: "visible" });
  await waitFor(`the offer of ${taskId} on the page`, async () =>
    (await panel.getAttribute("data-task-id")) === taskId,
  );
  const countdown = page.locator("#offer-countdown");
  const first = await waitForText(countdown, /^\d+ s$/);
  await waitFor("the countdown to move", async () => {
    const now = (await countdown.textContent()) ?? "";
    return /^\d+ s$/.test(now) && now !== first;
  });
}

/** The page's entry of a task, once it shows it in `state` (the TaskState name). */
async function taskEntry(page: Page, taskId: string, state: keyof typeof TaskState) {
  const entry = page.locator(`#tasks li[data-task-id="${taskId}"]`);
  await waitFor(`task ${taskId} ${state} on the page`, async () =>
    (await entry.count()) === 1 && (await entry.getAttribute("data-state")) === state,
  );
  return entry;
}

/** The page's alert region (hidden while empty, so found by its id and role). */
function alerts(page: Page) {
  return page.locator('#alerts[role="alert"]');
}

async function taskGone(page: Page, taskId: string): Promise<void> {
  await waitFor(`task ${taskId} to leave the page`, async () =>
    (await page.locator(`#tasks li[data-task-id="${taskId}"]`).count()) === 0,
  );
}

test("an offer reaches the right page, is accepted, transferred, conferenced, wrapped up and closed", async (t) => {
  const w = await world(t);
  const ana = await signIn(w, "ana");
  const ben = await signIn(w, "ben");
  await goReady(w, ana, "ana");

  // Only ana is ready: the task is offered to her, on her page alone.
  const { taskId } = await w.channel.newTask();
  await serverSays(w, taskId, "offered to ana", (x) => x.state === TaskState.OFFERED && x.offeredAgentId === "ana");
  await showsOffer(ana, taskId);
  assert.equal(await ben.locator("#offer-panel").isHidden(), true, "ben's page shows no offer");
  await waitForText(ana.locator("#mrd-states"), /Reserved/);
  await ana.screenshot({ path: screenshotPath(t, "desktop-offer.png") });

  await ana.getByRole("button", { name: "Accept", exact: true }).click();
  await taskEntry(ana, taskId, "ACTIVE");
  await ana.locator("#offer-panel").waitFor({ state: "hidden" });
  await serverSays(w, taskId, "active, ana's", (x) => x.state === TaskState.ACTIVE && x.ownerAgentId === "ana");

  // Transfer to ben, who must be able to take work.
  await goReady(w, ben, "ben");
  const anaEntry = await taskEntry(ana, taskId, "ACTIVE");
  await anaEntry.getByLabel("Other agent id").fill("ben");
  await anaEntry.getByRole("button", { name: "Transfer" }).click();
  await taskEntry(ben, taskId, "ACTIVE");
  await taskGone(ana, taskId);
  await serverSays(w, taskId, "transferred to ben", (x) => x.ownerAgentId === "ben" && x.state === TaskState.ACTIVE);

  // Ben brings ana back in as a conference participant.
  const benEntry = await taskEntry(ben, taskId, "ACTIVE");
  await benEntry.getByLabel("Other agent id").fill("ana");
  await benEntry.getByRole("button", { name: "Conference" }).click();
  await waitForText(await taskEntry(ana, taskId, "ACTIVE"), /participant \(owner ben\)/);
  await serverSays(w, taskId, "ana on it", (x) => x.participantAgentIds.includes("ana"));

  await benEntry.getByRole("button", { name: "Wrap up" }).click();
  await taskEntry(ben, taskId, "WRAPPING_UP");
  await serverSays(w, taskId, "wrapping up", (x) => x.state === TaskState.WRAPPING_UP);

  await (await taskEntry(ben, taskId, "WRAPPING_UP")).getByRole("button", { name: "Close" }).click();
  await taskGone(ben, taskId);
  await taskGone(ana, taskId);
  const closed = await serverSays(w, taskId, "closed", (x) => x.state === TaskState.CLOSED);
  assert.equal(closed.closeReason, CloseReason.DONE);
  const { tasks } = await w.server.admin.routing.listTasks({});
  const listed = tasks.find((x) => x.taskId === taskId);
  assert.equal(listed?.state, TaskState.CLOSED, "ListTasks has the task closed");
  assert.equal(listed?.ownerAgentId, "ben");

  // Ana goes not ready with a reason the server lists, then signs out.
  await ana.getByLabel("Reason").selectOption("lunch");
  await ana.getByRole("button", { name: "Not ready", exact: true }).click();
  await waitForText(ana.locator("#mrd-states"), `${w.center.mrd}: Not ready (lunch)`);
  const { agent: resting } = await w.server.admin.routing.getAgentState({ agentId: "ana" });
  assert.deepEqual(resting?.mrds.map((m) => [AgentState[m.state], m.reasonCode]), [["NOT_READY", "lunch"]]);
  const clientsBefore = (await w.server.admin.core.getServerStatus({})).clientCount;
  await ana.getByRole("button", { name: "Sign out" }).click();
  await ana.getByRole("button", { name: "Sign in" }).waitFor();
  await waitForText(ana.getByRole("status"), "Signed out");
  await waitFor("ana's client to be gone", async () =>
    (await w.server.admin.core.getServerStatus({})).clientCount === clientsBefore - 1,
  );
  const { agent: gone } = await w.server.admin.routing.getAgentState({ agentId: "ana" });
  assert.ok((gone?.mrds ?? []).every((m) => m.state === AgentState.LOGOUT), "ana is logged out of routing");

  // Nothing went wrong on either page.
  assert.equal(await alerts(ana).textContent(), "");
  assert.equal(await alerts(ben).textContent(), "");
});

test("a page closed without a goodbye loses its offer to the other agent after the grace period", async (t) => {
  const w = await world(t, { presenceGraceMs: 1500 });
  const ana = await signIn(w, "ana");
  const ben = await signIn(w, "ben");
  await goReady(w, ana, "ana");
  const { taskId } = await w.channel.newTask();
  await showsOffer(ana, taskId);
  await goReady(w, ben, "ben");
  await serverSays(w, taskId, "still ana's offer", (x) => x.offeredAgentId === "ana");

  await ana.close();
  // The grace period passes, ana's session logs out, and the offer moves on.
  await showsOffer(ben, taskId);
  await serverSays(w, taskId, "offered to ben", (x) => x.state === TaskState.OFFERED && x.offeredAgentId === "ben");
  const { agent } = await w.server.admin.routing.getAgentState({ agentId: "ana" });
  assert.ok(
    (agent?.mrds ?? []).every((m) => m.state === AgentState.LOGOUT),
    `ana is logged out of routing: ${JSON.stringify(agent?.mrds.map((m) => AgentState[m.state]))}`,
  );
  assert.ok(!(await task(w, taskId)).declinedAgentIds.includes("ben"));

  await ben.getByRole("button", { name: "Accept", exact: true }).click();
  await taskEntry(ben, taskId, "ACTIVE");
  await serverSays(w, taskId, "ben's", (x) => x.state === TaskState.ACTIVE && x.ownerAgentId === "ben");
});

test("a page signed in as one agent cannot act for another: the server refuses and the page says so", async (t) => {
  // A short token life: the pages renew theirs before acting.
  const w = await world(t, { args: ["--access-token-ttl-secs", "10"] });
  const ana = await signIn(w, "ana");
  const ben = await signIn(w, "ben");
  await goReady(w, ben, "ben");
  const { taskId } = await w.channel.newTask();
  await showsOffer(ben, taskId);
  await waitForText(ana.locator("#diag-renewed"), /\d/, 30_000);

  // Through the page's own client: accept ben's offer, set ben not ready.
  const acted = await ana.evaluate(
    ({ taskId }) =>
      (window as unknown as { switchboardDesktop: { call(s: string, m: string, r: unknown): Promise<unknown> } })
        .switchboardDesktop.call("routing", "acceptTask", { taskId, agentId: "ben" }),
    { taskId },
  );
  assert.equal(acted, undefined, "the call gave no answer");
  const alert = ana.getByRole("alert");
  await waitForText(alert, /routing\.acceptTask refused: PERMISSION_DENIED: .*ana.*ben/);
  await ana.evaluate(() =>
    (window as unknown as { switchboardDesktop: { call(s: string, m: string, r: unknown): Promise<unknown> } })
      .switchboardDesktop.call("routing", "changeAgentState", { agentId: "ben", state: 2 /* NOT_READY */ }),
  );
  await waitForText(alert, /routing\.changeAgentState refused: PERMISSION_DENIED: .*ben/);

  // Through the page's controls: conferencing ben's task, which ana is not on.
  await ana.evaluate(
    ({ taskId }) =>
      (window as unknown as { switchboardDesktop: { call(s: string, m: string, r: unknown): Promise<unknown> } })
        .switchboardDesktop.call("routing", "changeTaskState", { taskId, state: 6 /* CLOSED */ }),
    { taskId },
  );
  await waitForText(alert, /routing\.changeTaskState refused: PERMISSION_DENIED/);

  // Nothing changed for ben.
  const offered = await task(w, taskId);
  assert.equal(offered.state, TaskState.OFFERED);
  assert.equal(offered.offeredAgentId, "ben");
  const { agent } = await w.server.admin.routing.getAgentState({ agentId: "ben" });
  assert.equal(agent?.pendingOfferTaskId, taskId);
  assert.deepEqual(agent?.mrds.map((m) => AgentState[m.state]), ["RESERVED"]);
  assert.equal(await alerts(ben).textContent(), "");

  // Ben's own page, its token renewed too, answers its own offer.
  await waitForText(ben.locator("#diag-renewed"), /\d/, 30_000);
  await ben.getByRole("button", { name: "Accept", exact: true }).click();
  await taskEntry(ben, taskId, "ACTIVE");
  await serverSays(w, taskId, "ben's", (x) => x.state === TaskState.ACTIVE && x.ownerAgentId === "ben");
});

test("a page that loses its network reconnects, resumes from its last revision and keeps its offer", async (t) => {
  const w = await world(t);
  const proxy = await startProxy(t, w.server.addr);
  const ana = await signIn(w, "ana", proxy.url);
  await goReady(w, ana, "ana");

  // One task in hand, one offered.
  const first = await w.channel.newTask();
  await showsOffer(ana, first.taskId);
  await ana.getByRole("button", { name: "Accept", exact: true }).click();
  await taskEntry(ana, first.taskId, "ACTIVE");
  const { taskId } = await w.channel.newTask();
  await showsOffer(ana, taskId);
  const clientId = await ana.locator("#diag-client").textContent();

  // The network goes: open connections break and new ones are refused.
  proxy.setDown(true);
  proxy.cut();
  await waitForText(ana.getByRole("status"), /Reconnecting/);
  const last = BigInt((await ana.locator("#diag-revision").textContent()) ?? "");
  // Meanwhile the channel closes the first task.
  const { revision: closedAt } = await w.channel.clients.routing.changeTaskState({
    taskId: first.taskId,
    state: TaskState.CLOSED,
  });
  assert.ok(closedAt > last);
  await serverSays(w, taskId, "still ana's offer", (x) => x.state === TaskState.OFFERED && x.offeredAgentId === "ana");
  assert.equal(await ana.locator("#offer-panel").isVisible(), true, "the offer stays on screen meanwhile");

  proxy.setDown(false);
  await waitForText(ana.getByRole("status"), /Connected to/);
  assert.equal(await ana.locator("#diag-client").textContent(), clientId, "the same client resumed");
  assert.equal(await ana.locator("#diag-resumed").textContent(), String(last + 1n), "resumed from last + 1");
  // The close reaches the page as a replayed event, not only through the re-read.
  const closedLine = ana.locator("#activity li").filter({ hasText: `Task ${first.taskId}: Closed (DONE)` });
  await closedLine.waitFor();
  const closedRevision = BigInt((await closedLine.getAttribute("data-revision")) ?? "0");
  assert.ok(closedRevision > last && closedRevision <= closedAt, `replayed at ${closedRevision}`);
  await taskGone(ana, first.taskId);
  await showsOffer(ana, taskId);

  await ana.getByRole("button", { name: "Accept", exact: true }).click();
  await taskEntry(ana, taskId, "ACTIVE");
  await serverSays(w, taskId, "ana's", (x) => x.state === TaskState.ACTIVE && x.ownerAgentId === "ana");
  assert.equal((await task(w, first.taskId)).state, TaskState.CLOSED);
  assert.equal(await alerts(ana).textContent(), "");
});

test("the desktop asks every configured server and signs in on the least-loaded one", async (t) => {
  // Two servers that list each other (so each lets the other's pages call it), and one that
  // is not there.
  const [portA, portB, portGone] = [await freePort(), await freePort(), await freePort()];
  const urls = [portA, portB, portGone].map((p) => `http://127.0.0.1:${p}`);
  const a = await startServer(t, { listen: `127.0.0.1:${portA}`, webServers: urls });
  const b = await startServer(t, { listen: `127.0.0.1:${portB}`, webServers: urls });
  // A is busier: one client registered there.
  await a.admin.core.registerClient({ clientName: "busy" });
  const onA = await a.admin.core.getServerStatus({});
  assert.equal(onA.clientCount, 1);
  const center = await configureContactCenter(b, { mrd: MRD, agents: ["ana"] });
  const w: World = { server: b, center, channel: await channel(b, center), browser: await launchBrowser(t) };

  // The page comes from A, and signs in on B.
  const ana = await signIn(w, "ana", a.url);
  await waitForText(ana.getByRole("status"), `Connected to ${b.url} as ana`);
  const rows = ana.locator("#servers tr");
  assert.equal(await rows.count(), 3);
  assert.equal(await ana.locator(`#servers tr[data-url="${b.url}"]`).getAttribute("data-chosen"), "true");
  await waitForText(ana.locator(`#servers tr[data-url="${a.url}"]`), /in service\s*1/);
  await waitForText(ana.locator(`#servers tr[data-url="${urls[2]}"]`), /unreachable/);
  assert.equal(await ana.locator("#diag-server").textContent(), b.url);

  // B holds the desktop's client and session; A still only its own.
  await goReady(w, ana, "ana");
  assert.equal((await b.admin.core.getServerStatus({})).clientCount, 1);
  assert.equal((await a.admin.core.getServerStatus({})).clientCount, 1);

  // A first offer rejected goes back to its queue (and is not offered to ana again).
  const rejected = await w.channel.newTask();
  await showsOffer(ana, rejected.taskId);
  await ana.getByRole("button", { name: "Reject", exact: true }).click();
  await ana.locator("#offer-panel").waitFor({ state: "hidden" });
  await serverSays(w, rejected.taskId, "back in its queue", (x) =>
    x.state === TaskState.QUEUED && x.declinedAgentIds.includes("ana"),
  );

  const { taskId } = await w.channel.newTask();
  await showsOffer(ana, taskId);
  await ana.getByRole("button", { name: "Accept", exact: true }).click();
  await taskEntry(ana, taskId, "ACTIVE");
  await serverSays(w, taskId, "ana's on B", (x) => x.state === TaskState.ACTIVE && x.ownerAgentId === "ana");
  assert.equal(await alerts(ana).textContent(), "");
});

test("a second desktop of the same agent asks before taking the session over, and the first one says it lost it", async (t) => {
  const w = await world(t);
  const first = await signIn(w, "ana");
  await goReady(w, first, "ana");

  const second = await w.browser.newPage(w.server.url);
  await second.getByLabel("Agent id").fill("ana");
  await second.getByLabel("Password").fill(w.center.password);
  await second.getByRole("button", { name: "Sign in" }).click();
  const takeOver = second.getByRole("button", { name: "Take the session over" });
  await takeOver.waitFor();
  await takeOver.click();
  await waitForText(second.getByRole("status"), "Connected to");

  await waitForText(alerts(first), /Another desktop took this session over/);
  await first.getByRole("button", { name: "Sign in" }).waitFor();
  // The session carried on: still logged in, and ana still ready, now on the second page.
  await waitForText(second.locator("#view-state"), "logged_in");
  await waitForText(second.locator("#mrd-states"), `${w.center.mrd}: Ready`);
  const session = await w.server.admin.workflow.getSessionState({ resourceId: "Switchboard-ana" });
  assert.equal(session.viewState, "logged_in");
  const { agent } = await w.server.admin.routing.getAgentState({ agentId: "ana" });
  assert.deepEqual(agent?.mrds.map((m) => AgentState[m.state]), ["READY"]);
  const { taskId } = await w.channel.newTask();
  await showsOffer(second, taskId);
  assert.equal(await first.locator("#offer-panel").isHidden(), true);
});

test("a page away longer than the grace period starts over with a new client and says so", async (t) => {
  const w = await world(t, { presenceGraceMs: 1500 });
  const proxy = await startProxy(t, w.server.addr);
  const ana = await signIn(w, "ana", proxy.url);
  await goReady(w, ana, "ana");
  const clientId = await ana.locator("#diag-client").textContent();

  proxy.setDown(true);
  proxy.cut();
  await waitForText(ana.getByRole("status"), /Reconnecting/);
  // The server gives up on the client: its session logs out of routing.
  await waitFor("ana logged out by the server", async () => {
    const { agent } = await w.server.admin.routing.getAgentState({ agentId: "ana" });
    return (agent?.mrds ?? []).every((m) => m.state === AgentState.LOGOUT);
  });
  proxy.setDown(false);

  await waitForText(alerts(ana), /no longer knew this desktop \(NOT_FOUND: /);
  await waitForText(ana.getByRole("status"), "Connected to");
  await waitFor("a new client", async () => {
    const now = await ana.locator("#diag-client").textContent();
    return now !== clientId && now !== "-" ? now : undefined;
  });
  // The session is prepared and bound again, and works: log in and take an offer.
  await goReady(w, ana, "ana");
  const { taskId } = await w.channel.newTask();
  await showsOffer(ana, taskId);
  await ana.getByRole("button", { name: "Accept", exact: true }).click();
  await serverSays(w, taskId, "ana's", (x) => x.state === TaskState.ACTIVE && x.ownerAgentId === "ana");
});
