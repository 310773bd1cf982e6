// The supervisor wallboard in a real Chromium against a real server: its figures follow a
// scenario driven over gRPC, step by step, each step compared with GetQueueStats,
// ListAgentStates and ListTasks; a supervisor's actions from the page reach the server; and the
// page under load agrees with the server too (and is photographed).
import assert from "node:assert/strict";
import { test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  channel,
  launchBrowser,
  LogoutAction,
  ReasonCategory,
  Role,
  screenshotPath,
  startProxy,
  startServer,
  upsertAccount,
  upsertAgent,
  upsertMrd,
  upsertQueue,
  upsertReasonCode,
  waitFor,
  waitForText,
  type ContactCenter,
  type Server,
} from "./harness";
import {
  agent,
  AgentState,
  allAgents,
  allTasks,
  expectAgreement,
  openWallboard,
  pageFigures,
  serviceLevel,
  signIn,
  TaskState,
  type Agent,
} from "./wallboard-setup";

const PASSWORD = "wall-Pw-42";
const SUPERVISOR = { accountId: "floor", secret: "floor-Secret-42" };
const INTEGRATION = { accountId: "chat-channel", secret: "channel-Secret-42" };
/** Offers and wrap-ups outlast any test: no timer of the engine changes a step under it. */
const LONG = 3600;

/** An MRD, its queues (one step each), the reason codes, the agents with their skills, a
 * supervisor and a channel: what the tests share. */
async function configure(
  server: Server,
  mrds: { name: string; maxTasks: number; queues: [string, string][] }[],
  agents: Record<string, Record<string, number>>,
): Promise<ContactCenter> {
  const admin = server.admin;
  for (const m of mrds) {
    await upsertMrd(admin, {
      name: m.name,
      maxTasks: m.maxTasks,
      // Digital channels that blend: work on one does not keep the others from offering.
      interruptible: true,
      offerTimeoutSeconds: LONG,
      wrapUpTimeoutSeconds: LONG,
      logoutAction: LogoutAction.REQUEUE,
    });
    for (const [queue, expression] of m.queues) await upsertQueue(admin, m.name, queue, expression);
  }
  const reasonCodes = [
    { code: "lunch", label: "Lunch" },
    { code: "training", label: "Training" },
  ];
  for (const { code, label } of reasonCodes) await upsertReasonCode(admin, code, label);
  for (const [id, skills] of Object.entries(agents)) await upsertAgent(admin, id, PASSWORD, skills);
  await upsertAccount(admin, SUPERVISOR.accountId, SUPERVISOR.secret, [Role.SUPERVISOR]);
  await upsertAccount(admin, INTEGRATION.accountId, INTEGRATION.secret, [Role.INTEGRATION]);
  return {
    mrd: mrds[0]!.name,
    queue: mrds[0]!.queues[0]![0],
    agents: Object.keys(agents),
    password: PASSWORD,
    reasonCodes,
    supervisor: SUPERVISOR,
    integration: INTEGRATION,
  };
}

/** How many of these tasks waited at most 20 s from arrival to acceptance, by the server's
 * record (read right after each was accepted: its last change is the acceptance). */
const within20s = (waits: number[]) => waits.filter((w) => w <= 20_000).length;

test("the wallboard's figures follow each step of a scenario, as the server reports them", async (t) => {
  const server = await startServer(t);
  const center = await configure(
    server,
    [{ name: "chat", maxTasks: 2, queues: [["support", "support >= 1"], ["sales", "sales >= 1"]] }],
    { ana: { support: 5 }, ben: { support: 5, sales: 5 } },
  );
  const queues: [string, string][] = [
    ["chat", "default"],
    ["chat", "sales"],
    ["chat", "support"],
  ];
  const ch = await channel(server, center);
  const ana = await agent(server, "ana", PASSWORD);
  const ben = await agent(server, "ben", PASSWORD);
  const browser = await launchBrowser(t);
  const page = await openWallboard(browser, server.url, SUPERVISOR.accountId, SUPERVISOR.secret);
  const admin = server.admin;
  const agree = (what: string) => expectAgreement(page, admin, queues, what);
  const waitOf = async (taskId: string) => {
    const { task } = await admin.routing.getTaskState({ taskId });
    assert.equal(task?.state, TaskState.ACTIVE, `${taskId} was just accepted`);
    return timestampMs(task.updatedTime!) - timestampMs(task.createdTime!);
  };

  let f = await agree("with nothing going on");
  assert.deepEqual(f.queues["chat/support"], { waiting: 0 });
  assert.deepEqual(f.agents, {});
  assert.equal((await serviceLevel(page, "chat", "support")).answered, 0);
  assert.match(await page.locator("#sl-definition").innerText(), /within 20 s of arriving/);

  // A task waits in support; nobody is logged in.
  const t1 = (await ch.newTask({ queue: "support" })).taskId;
  f = await agree("after a task is queued in support");
  assert.equal(f.queues["chat/support"]!.waiting, 1);
  const oldest = page.locator('#queues tr[data-queue="support"] [data-field=oldest]');
  assert.match((await oldest.textContent())!, /^\d+:\d\d$/, "the oldest wait shows as m:ss");

  const t2 = (await ch.newTask({ queue: "sales" })).taskId;
  f = await agree("after a task is queued in sales");
  assert.equal(f.queues["chat/sales"]!.waiting, 1);

  await ana.login("chat");
  f = await agree("after ana logs in (NOT_READY)");
  assert.equal(f.agents["chat/ana"], "NOT_READY");

  // Ready: support's task is offered to her at once.
  await ana.ready("chat");
  f = await agree("after ana goes READY and is offered the support task");
  assert.equal(f.agents["chat/ana"], "RESERVED");
  assert.equal(f.tasks[t1], "support ana OFFERED");
  assert.equal(f.queues["chat/support"]!.waiting, 0);

  await ana.accept(t1);
  const answered = [await waitOf(t1)];
  f = await agree("after ana accepts");
  assert.equal(f.agents["chat/ana"], "ACTIVE");
  assert.equal(f.tasks[t1], "support ana ACTIVE");
  let sl = await serviceLevel(page, "chat", "support");
  assert.deepEqual([sl.answered, sl.within], [1, within20s(answered)]);

  // Ben takes sales' task, then rejects it: it goes back in, and waits from the rejection.
  await ben.login("chat");
  await ben.ready("chat");
  f = await agree("after ben goes READY and is offered the sales task");
  assert.equal(f.tasks[t2], "sales ben OFFERED");
  const queuedBefore = (await admin.routing.getTaskState({ taskId: t2 })).task!.queuedTime!;
  await ben.reject(t2);
  f = await agree("after ben rejects the sales task");
  assert.equal(f.queues["chat/sales"]!.waiting, 1);
  assert.ok(f.queues["chat/sales"]!.oldestQueuedMs! >= timestampMs(queuedBefore), "the wait restarts at the rejection");
  assert.equal(f.tasks[t2], undefined);

  // A new support task goes to ben (no task yet) rather than ana (one).
  const t3 = (await ch.newTask({ queue: "support" })).taskId;
  f = await agree("after a second support task is offered to ben");
  assert.equal(f.tasks[t3], "support ben OFFERED");
  await ben.accept(t3);
  answered.push(await waitOf(t3));
  f = await agree("after ben accepts");
  sl = await serviceLevel(page, "chat", "support");
  assert.deepEqual([sl.answered, sl.within], [2, within20s(answered)]);
  assert.match(sl.text, /^\d+% \(\d of 2\)$/);

  await ana.wrapUp(t1);
  f = await agree("after ana wraps up");
  assert.equal(f.agents["chat/ana"], "WORK_READY");
  assert.equal(f.tasks[t1], "support ana WRAPPING_UP");

  await ana.close(t1);
  f = await agree("after ana closes her task");
  assert.equal(f.agents["chat/ana"], "READY");
  assert.equal(f.tasks[t1], undefined);

  // The channel withdraws the waiting sales task; ben finishes his.
  await ch.clients.routing.changeTaskState({ taskId: t2, state: TaskState.CLOSED });
  await ben.wrapUp(t3);
  await ben.close(t3);
  f = await agree("once every task is closed");
  assert.deepEqual(f.tasks, {});
  assert.deepEqual(f.byState, { chat: { READY: 2 } });
  assert.equal(await page.locator("#alerts p").count(), 0, "no refusal on the way");
});

test("a supervisor sets agents Not ready and logs them out from the wallboard", async (t) => {
  const server = await startServer(t);
  const center = await configure(
    server,
    [{ name: "chat", maxTasks: 2, queues: [["support", "support >= 1"]] }],
    { cara: { support: 5 }, dan: { support: 5 }, eve: { support: 5 } },
  );
  const queues: [string, string][] = [
    ["chat", "default"],
    ["chat", "support"],
  ];
  const admin = server.admin;
  const agents = new Map<string, Agent>();
  for (const id of ["cara", "dan", "eve"]) {
    const a = await agent(server, id, PASSWORD);
    await a.login("chat");
    await a.ready("chat");
    agents.set(id, a);
  }
  const stateOf = async (id: string) => {
    const mrd = (await allAgents(admin)).find((a) => a.agentId === id)?.mrds.find((m) => m.mrd === "chat");
    return mrd ? `${AgentState[mrd.state]}${mrd.reasonCode ? ` ${mrd.reasonCode}` : ""}` : "LOGGED_OUT";
  };
  const browser = await launchBrowser(t);
  const page = await browser.newPage(`${server.url}/wallboard`);

  // Refusals at sign-in show in the alert region: a wrong secret, and an account that is no
  // supervisor.
  await signIn(page, SUPERVISOR.accountId, "not-the-secret");
  await waitForText(page.locator("#alerts"), /Sign-in refused: unauthenticated/i);
  await signIn(page, INTEGRATION.accountId, INTEGRATION.secret);
  await waitForText(page.locator("#alerts"), /neither a supervisor nor an admin/);
  assert.ok(await page.locator("#sign-in").isVisible());
  await signIn(page, SUPERVISOR.accountId, SUPERVISOR.secret);
  await page.locator("#connection[data-live=true]").waitFor();
  await expectAgreement(page, admin, queues, "once signed in");

  const row = (id: string) => page.locator(`#mrds tr[data-agent="${id}"][data-mrd="chat"]`);

  // Not ready with a reason, from the keyboard.
  await row("cara").getByLabel("Not ready reason for cara on chat").selectOption("lunch");
  await row("cara").getByRole("button", { name: "Set cara not ready on chat" }).focus();
  await page.keyboard.press("Enter");
  await waitFor("cara NOT_READY (lunch) on the server", async () => (await stateOf("cara")) === "NOT_READY lunch");
  let f = await expectAgreement(page, admin, queues, "after cara is set not ready");
  assert.equal(f.agents["chat/cara"], "NOT_READY lunch");
  assert.match(await row("cara").locator("td[data-field=reason]").innerText(), /Lunch \(lunch\)/);
  await waitForText(page.locator("#action-status"), "Set cara not ready on chat (lunch): done");

  // An agent with a task goes PENDING_NOT_READY, then NOT_READY once the task ends.
  const ch = await channel(server, center);
  const offered = (await ch.newTask()).task!;
  assert.equal(offered.state, TaskState.OFFERED);
  const busy = agents.get(offered.offeredAgentId)!;
  const idle = busy.id === "dan" ? "eve" : "dan";
  await busy.accept(offered.taskId);
  await expectAgreement(page, admin, queues, `after ${busy.id} accepts a task`);
  await row(busy.id).getByRole("button", { name: `Set ${busy.id} not ready on chat` }).click();
  await waitFor(`${busy.id} PENDING_NOT_READY on the server`, async () => (await stateOf(busy.id)) === "PENDING_NOT_READY");
  f = await expectAgreement(page, admin, queues, `after ${busy.id} is set not ready while on a task`);
  assert.equal(f.agents[`chat/${busy.id}`], "PENDING_NOT_READY");

  // Logging out an agent with a task asks first; its task goes back to the queue and on to the
  // agent still ready.
  page.once("dialog", (dialog) => {
    assert.match(dialog.message(), /go back to their queues/);
    void dialog.accept();
  });
  await row(busy.id).getByRole("button", { name: `Log out ${busy.id} from chat` }).click();
  await waitFor(`${busy.id} logged out on the server`, async () => (await stateOf(busy.id)) === "LOGGED_OUT");
  f = await expectAgreement(page, admin, queues, `after ${busy.id} is logged out`);
  assert.equal(f.agents[`chat/${busy.id}`], undefined);
  assert.equal(await row(busy.id).count(), 0);
  assert.equal(f.tasks[offered.taskId], `support ${idle} OFFERED`);

  // A refusal from the server shows in the alert region and changes nothing: the reason code
  // became a LOGOUT one after the page read the reason codes.
  await upsertReasonCode(admin, "training", "Training", ReasonCategory.LOGOUT);
  await row(idle).getByLabel(`Not ready reason for ${idle} on chat`).selectOption("training");
  await row(idle).getByRole("button", { name: `Set ${idle} not ready on chat` }).click();
  const said = await waitForText(page.locator("#alerts"), /(INVALID_ARGUMENT|InvalidArgument): reason_code/);
  assert.match(said, new RegExp(`Set ${idle} not ready on chat \\(training\\): (INVALID_ARGUMENT|InvalidArgument)`));
  assert.equal(await stateOf(idle), "RESERVED");

  // Logging out an idle agent needs no confirmation.
  await agents.get(idle)!.accept(offered.taskId);
  await agents.get(idle)!.close(offered.taskId);
  await expectAgreement(page, admin, queues, `after ${idle} closes the task`);
  await row(idle).getByRole("button", { name: `Log out ${idle} from chat` }).click();
  await waitFor(`${idle} logged out on the server`, async () => (await stateOf(idle)) === "LOGGED_OUT");
  f = await expectAgreement(page, admin, queues, `after ${idle} is logged out`);
  assert.deepEqual(Object.keys(f.agents), ["chat/cara"]);
});

test("the wallboard under load agrees with the server, and is photographed", async (t) => {
  const server = await startServer(t);
  const skills = ["support", "sales", "billing"];
  const agentSkills: Record<string, Record<string, number>> = {};
  for (let i = 1; i <= 30; i++) {
    const id = `agent-${String(i).padStart(2, "0")}`;
    agentSkills[id] = { [skills[i % 3]!]: 5, [skills[(i + 1) % 3]!]: 3 };
  }
  const center = await configure(
    server,
    [
      { name: "chat", maxTasks: 3, queues: skills.map((s) => [s, `${s} >= 1`] as [string, string]) },
      { name: "email", maxTasks: 5, queues: [] },
    ],
    agentSkills,
  );
  const queues: [string, string][] = [
    ["chat", "billing"],
    ["chat", "default"],
    ["chat", "sales"],
    ["chat", "support"],
    ["email", "default"],
  ];
  const admin = server.admin;
  const ch = await channel(server, center);
  const agents = await Promise.all(Object.keys(agentSkills).map((id) => agent(server, id, PASSWORD)));
  await Promise.all(
    agents.map(async (a, i) => {
      await a.login();
      if (i % 6 === 5) {
        await a.clients.routing.changeAgentState({ agentId: a.id, state: AgentState.NOT_READY, reasonCode: i % 12 === 5 ? "lunch" : "training" });
      } else {
        await a.ready();
      }
    }),
  );
  const newTasks = async (n: number, from: number) => {
    for (let i = from; i < from + n; i++) {
      const email = i % 5 === 4;
      await ch.newTask(
        email
          ? { mrd: "email", queue: "", priority: 1 + (i % 10) }
          : { mrd: "chat", queue: skills[i % 3]!, priority: 1 + (i % 10) },
      );
    }
  };
  // Some of every agent's offers accepted, in rounds: the agents end up in every state.
  const acceptRound = async (share: number) => {
    const offered = (await allTasks(admin)).filter((t) => t.state === TaskState.OFFERED);
    const take = offered.slice(0, Math.ceil(offered.length * share));
    await Promise.all(
      take.map((t) => agents.find((a) => a.id === t.offeredAgentId)!.accept(t.taskId)),
    );
    return take;
  };

  // Half the load is there before the page opens (it arrives in the lists), half after (it
  // arrives through the watch).
  await newTasks(100, 0);
  await acceptRound(1);
  const browser = await launchBrowser(t);
  const page = await openWallboard(browser, server.url, SUPERVISOR.accountId, SUPERVISOR.secret);
  await expectAgreement(page, admin, queues, "with 100 tasks listed");
  await newTasks(100, 100);
  const answered = [...(await acceptRound(1)), ...(await acceptRound(0.5))];
  const f = await expectAgreement(page, admin, queues, "with 200 tasks");

  // The service level counts exactly the acceptances made since the page opened.
  for (const [mrd, queue] of queues) {
    const expected = answered.filter((t) => t.mrd === mrd && t.queue === queue).length;
    assert.equal((await serviceLevel(page, mrd, queue)).answered, expected, `answered in ${mrd}/${queue}`);
  }

  const tasks = await allTasks(admin);
  assert.equal(tasks.length, 200);
  const waiting = Object.values(f.queues).reduce((n, q) => n + q.waiting, 0);
  assert.equal(waiting, tasks.filter((t) => t.state === TaskState.QUEUED).length);
  assert.ok(waiting > 0, "some tasks wait");
  assert.equal(Object.keys(f.tasks).length, tasks.filter((t) => t.state !== TaskState.QUEUED).length);
  assert.ok(Object.keys(f.agents).length === 60, "30 agents on 2 MRDs");
  const states = new Set(Object.values(f.agents).map((s) => s.split(" ")[0]));
  for (const s of ["NOT_READY", "RESERVED", "ACTIVE"]) assert.ok(states.has(s), `some agent is ${s}: ${[...states]}`);

  // What a wall screen shows: the page at 1366x768, whole.
  const shown = await pageFigures(page);
  assert.deepEqual(shown, f);
  const path = screenshotPath(t, "wallboard.png");
  await page.screenshot({ path, fullPage: false });
  t.diagnostic(`screenshot: ${path}`);
});

test("after its network drops, the wallboard resumes its watch, or reads everything again when the journal moved on", async (t) => {
  // A snapshot every 10 events, keeping 5 behind it: a watch a few events behind resumes, one
  // that fell 15 behind cannot and is told OUT_OF_RANGE.
  const server = await startServer(t, { args: ["--snapshot-every", "10", "--retain-events", "5"] });
  const center = await configure(
    server,
    [{ name: "chat", maxTasks: 2, queues: [["support", "support >= 1"]] }],
    { fay: { support: 5 } },
  );
  const queues: [string, string][] = [
    ["chat", "default"],
    ["chat", "support"],
  ];
  const admin = server.admin;
  const ch = await channel(server, center);
  const fay = await agent(server, "fay", PASSWORD);
  await fay.login("chat");
  // The page reaches the server only through this proxy.
  const proxy = await startProxy(t, server.addr);
  const browser = await launchBrowser(t);
  const page = await openWallboard(browser, proxy.url, SUPERVISOR.accountId, SUPERVISOR.secret);
  await expectAgreement(page, admin, queues, "before the network drops");
  const lists = async () => Number(await page.locator("#connection").getAttribute("data-lists"));
  assert.equal(await lists(), 1);
  const offline = async () => {
    proxy.setDown(true);
    proxy.cut();
    await page.locator("#connection[data-live=false]").waitFor();
  };

  // A short drop: one task arrives meanwhile (two events); the watch resumes where it was.
  await offline();
  const waiting = (await ch.newTask()).taskId;
  proxy.setDown(false);
  let f = await expectAgreement(page, admin, queues, "after a short drop");
  assert.equal(f.queues["chat/support"]!.waiting, 1);
  assert.equal(await lists(), 1, "resumed from its revision, without reading the lists again");
  await page.locator("#connection[data-live=true]").waitFor();

  // A long one: some 25 events and two snapshots later, the revision is gone from the journal;
  // the page reads everything again and agrees once more.
  await offline();
  for (let i = 0; i < 12; i++) {
    const id = (await ch.newTask()).taskId;
    await ch.clients.routing.changeTaskState({ taskId: id, state: TaskState.CLOSED });
  }
  await fay.ready("chat");
  proxy.setDown(false);
  f = await expectAgreement(page, admin, queues, "after a long drop");
  assert.equal(f.tasks[waiting], "support fay OFFERED");
  assert.equal(await lists(), 2, "read the lists again after OUT_OF_RANGE");
  assert.equal(await page.locator("#alerts p").count(), 0, "a drop is no refusal");
});
