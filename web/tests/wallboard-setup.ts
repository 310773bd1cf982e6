// What the wallboard's browser tests add to the harness: agents driven over gRPC with their own
// tokens, opening and signing in to the wallboard, and the same figures read two ways (from the
// page's tables, and from the server's GetQueueStats / ListAgentStates / ListTasks) so a test can
// wait for them to agree.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Page } from "playwright-core";
import { AgentState, TaskState, type AgentStatus, type TaskStatus } from "../src/gen/switchboard/v1/routing_pb";
import { waitFor, type Browser, type Clients, type Server } from "./harness";

/** An agent's own gRPC clients, signed in with its password. */
export interface Agent {
  readonly id: string;
  readonly clients: Clients;
  /** Logs in on `mrd` (every MRD it may work on when empty); the agent starts NOT_READY. */
  login(mrd?: string): Promise<void>;
  ready(mrd?: string): Promise<void>;
  accept(taskId: string): Promise<void>;
  reject(taskId: string): Promise<void>;
  wrapUp(taskId: string): Promise<void>;
  close(taskId: string): Promise<void>;
}

export async function agent(server: Server, id: string, password: string): Promise<Agent> {
  const clients = await server.clientsAs({ agentId: id }, password);
  const routing = clients.routing;
  return {
    id,
    clients,
    // The agent's own token proves it: no password needed.
    login: async (mrd = "") => void (await routing.loginAgent({ agentId: id, mrd })),
    ready: async (mrd = "") => void (await routing.changeAgentState({ agentId: id, mrd, state: AgentState.READY })),
    accept: async (taskId) => void (await routing.acceptTask({ taskId, agentId: id })),
    reject: async (taskId) => void (await routing.rejectTask({ taskId, agentId: id })),
    wrapUp: async (taskId) => void (await routing.changeTaskState({ taskId, state: TaskState.WRAPPING_UP })),
    close: async (taskId) => void (await routing.changeTaskState({ taskId, state: TaskState.CLOSED })),
  };
}

/** Opens the wallboard of the server at `baseUrl` in `browser` and signs in as `accountId`;
 * resolves once it is live. */
export async function openWallboard(
  browser: Browser,
  baseUrl: string,
  accountId: string,
  secret: string,
): Promise<Page> {
  const page = await browser.newPage(`${baseUrl}/wallboard`);
  await signIn(page, accountId, secret);
  await page.locator("#connection[data-live=true]").waitFor();
  await page.locator("#board").waitFor({ state: "visible" });
  return page;
}

/** Fills and sends the sign-in form. */
export async function signIn(page: Page, accountId: string, secret: string): Promise<void> {
  await page.getByLabel("Account").fill(accountId);
  await page.getByLabel("Secret").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** One queue's figures. `oldestQueuedMs`: when its longest-waiting task went in (absent: none). */
export interface QueueFigures {
  waiting: number;
  oldestQueuedMs?: number;
}

/** The figures both sides show, keyed so that two readings compare with `deepEqual`. */
export interface Figures {
  /** `mrd/queue` -> figures. */
  queues: Record<string, QueueFigures>;
  /** `mrd/agent` -> `STATE` or `STATE reason`. */
  agents: Record<string, string>;
  /** `mrd` -> `STATE` -> number of agents (states with none left out). */
  byState: Record<string, Record<string, number>>;
  /** Task id -> `queue agent STATE` for tasks offered, active, paused or wrapping up. */
  tasks: Record<string, string>;
}

const sorted = <T>(record: Record<string, T>): Record<string, T> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** What the page shows, read from its tables' rows and data attributes. */
export async function pageFigures(page: Page): Promise<Figures> {
  const raw = await page.evaluate(() => {
    const queues: [string, number, string][] = [];
    for (const row of document.querySelectorAll<HTMLTableRowElement>("#queues tr")) {
      const waiting = row.querySelector("[data-field=waiting]")!.textContent!;
      const queued = row.querySelector("[data-field=oldest]")!.getAttribute("data-queued-ms") ?? "";
      queues.push([`${row.dataset.mrd}/${row.dataset.queue}`, Number(waiting), queued]);
    }
    const agents: [string, string, string, string][] = [];
    for (const row of document.querySelectorAll<HTMLTableRowElement>("#mrds tbody tr")) {
      const reason = row.querySelector("td[data-field=reason]")!.textContent!;
      agents.push([row.dataset.mrd!, row.dataset.agent!, row.dataset.state!, reason]);
    }
    const byState: [string, string, number][] = [];
    for (const cell of document.querySelectorAll<HTMLElement>("#states tr td[data-state]")) {
      const mrd = cell.closest<HTMLElement>("tr")!.dataset.mrd!;
      byState.push([mrd, cell.dataset.state!, Number(cell.textContent)]);
    }
    const tasks: [string, string][] = [];
    for (const row of document.querySelectorAll<HTMLTableRowElement>("#tasks tr")) {
      const queue = row.cells[2]!.textContent!;
      const agent = row.querySelector("[data-field=agent]")!.getAttribute("data-agent")!;
      tasks.push([row.dataset.task!, `${queue} ${agent} ${row.dataset.state}`]);
    }
    return { queues, agents, byState, tasks };
  });
  const figures: Figures = { queues: {}, agents: {}, byState: {}, tasks: {} };
  for (const [key, waiting, queued] of raw.queues) {
    figures.queues[key] = queued === "" ? { waiting } : { waiting, oldestQueuedMs: Number(queued) };
  }
  for (const [mrd, agentId, state, reason] of raw.agents) {
    // The page shows a reason as its label with the code: keep the code.
    const code = /\(([^()]+)\)$/.exec(reason)?.[1] ?? reason;
    figures.agents[`${mrd}/${agentId}`] = code ? `${state} ${code}` : state;
  }
  for (const [mrd, state, count] of raw.byState) {
    if (count === 0) continue;
    (figures.byState[mrd] ??= {})[state] = count;
  }
  for (const [id, text] of raw.tasks) figures.tasks[id] = text;
  return normalized(figures);
}

function normalized(f: Figures): Figures {
  return {
    queues: sorted(f.queues),
    agents: sorted(f.agents),
    byState: sorted(Object.fromEntries(Object.entries(f.byState).map(([k, v]) => [k, sorted(v)]))),
    tasks: sorted(f.tasks),
  };
}

/** Every page of ListAgentStates. */
export async function allAgents(clients: Clients): Promise<AgentStatus[]> {
  const agents: AgentStatus[] = [];
  let pageToken = "";
  do {
    const page = await clients.routing.listAgentStates({ pageSize: 1000, pageToken });
    agents.push(...page.agents);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return agents;
}

/** Every page of ListTasks (the tasks in memory: open ones and recently closed ones). */
export async function allTasks(clients: Clients): Promise<TaskStatus[]> {
  const tasks: TaskStatus[] = [];
  let pageToken = "";
  do {
    const page = await clients.routing.listTasks({ pageSize: 1000, pageToken });
    tasks.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return tasks;
}

const stateCode = (s: AgentState): string => AgentState[s] ?? String(s);

/** The same figures from the server: the waiting count from GetQueueStats (its longest wait
 * checked against ListTasks' oldest queued task on the way), agents from ListAgentStates,
 * tasks from ListTasks. `queues` lists `[mrd, queue]` pairs to ask GetQueueStats about. */
export async function serverFigures(clients: Clients, queues: readonly [string, string][]): Promise<Figures> {
  const tasks = await allTasks(clients);
  const figures: Figures = { queues: {}, agents: {}, byState: {}, tasks: {} };
  for (const [mrd, queue] of queues) {
    const before = Date.now();
    const stats = await clients.routing.getQueueStats({ mrd, queue });
    const after = Date.now();
    const queued = tasks.filter((t) => t.state === TaskState.QUEUED && t.mrd === mrd && t.queue === queue);
    if (stats.waiting !== queued.length) {
      // The two reads straddled a change: not a stable moment, so not comparable yet.
      throw new Error(`${mrd}/${queue}: GetQueueStats says ${stats.waiting} waiting, ListTasks ${queued.length}`);
    }
    if (queued.length === 0) {
      figures.queues[`${mrd}/${queue}`] = { waiting: 0 };
      continue;
    }
    const oldest = Math.min(...queued.map((t) => timestampMs(t.queuedTime!)));
    // GetQueueStats measured the wait at some moment between `before` and `after`.
    const wait = Number(stats.longestWaitMs);
    if (wait < before - oldest - 1 || wait > after - oldest + 1) {
      throw new Error(
        `${mrd}/${queue}: GetQueueStats' longest wait ${wait} ms is not that of the task queued at ${oldest}`,
      );
    }
    figures.queues[`${mrd}/${queue}`] = { waiting: stats.waiting, oldestQueuedMs: oldest };
  }
  for (const a of await allAgents(clients)) {
    for (const m of a.mrds) {
      const state = stateCode(m.state);
      figures.agents[`${m.mrd}/${a.agentId}`] = m.reasonCode ? `${state} ${m.reasonCode}` : state;
      const counts = (figures.byState[m.mrd] ??= {});
      counts[state] = (counts[state] ?? 0) + 1;
    }
  }
  for (const t of tasks) {
    if (t.state === TaskState.QUEUED || t.state === TaskState.CLOSED) continue;
    const who = t.state === TaskState.OFFERED ? t.offeredAgentId : t.ownerAgentId;
    figures.tasks[t.taskId] = `${t.queue} ${who} ${TaskState[t.state]}`;
  }
  return normalized(figures);
}

/** Waits until the page shows what the server says, and answers that; on a timeout the error
 * shows both. The server must be at rest (no change in flight) for this to settle. */
export async function expectAgreement(
  page: Page,
  clients: Clients,
  queues: readonly [string, string][],
  what: string,
): Promise<Figures> {
  let last: { page?: Figures; server?: Figures } = {};
  try {
    return await waitFor(`the wallboard to agree with the server ${what}`, async () => {
      const server = await serverFigures(clients, queues);
      const shown = await pageFigures(page);
      last = { page: shown, server };
      return JSON.stringify(shown) === JSON.stringify(server) ? server : undefined;
    });
  } catch (error) {
    throw new Error(
      `${(error as Error).message}\npage:   ${JSON.stringify(last.page)}\nserver: ${JSON.stringify(last.server)}`,
    );
  }
}

/** The service level cell of a queue: answered and within the threshold. */
export async function serviceLevel(page: Page, mrd: string, queue: string): Promise<{ answered: number; within: number; text: string }> {
  const cell = page.locator(`#queues tr[data-mrd="${mrd}"][data-queue="${queue}"] [data-field=sl]`);
  return {
    answered: Number(await cell.getAttribute("data-answered")),
    within: Number(await cell.getAttribute("data-within")),
    text: (await cell.textContent()) ?? "",
  };
}

export { AgentState, TaskState };
