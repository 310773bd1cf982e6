// What every browser test needs: a real server on a temporary data directory, gRPC clients
// over HTTP/2 signed in as its first admin, the routing configuration a contact center needs
// (an MRD, a queue, reason codes, agents, a supervisor and a channel's account), a channel
// that submits tasks, a headless Chromium, and a TCP proxy that can cut a page's network.
// Everything a test starts is ended after it, by PID for the server, even when it fails.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { chromium, type BrowserContext, type Locator, type Page } from "playwright-core";
import {
  AdminService,
  LogoutAction,
  ReasonCategory,
  RonaAction,
  Role,
  type UpsertAccountResponse,
} from "../src/gen/switchboard/v1/admin_pb";
import { AuthService, type LoginResponse } from "../src/gen/switchboard/v1/auth_pb";
import { CoreService } from "../src/gen/switchboard/v1/core_pb";
import { ProcessorService } from "../src/gen/switchboard/v1/processor_pb";
import {
  RoutingService,
  type NewTaskRequestSchema,
  type NewTaskResponse,
} from "../src/gen/switchboard/v1/routing_pb";
import { WorkflowService } from "../src/gen/switchboard/v1/workflow_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";

export { LogoutAction, ReasonCategory, RonaAction, Role };

/** The server binary: `SWITCHBOARD_BIN`, else the main checkout's debug build. */
export const SERVER_BIN = process.env.SWITCHBOARD_BIN ?? "/work/main/target/debug/switchboard";
/** The pages the server serves: `SWITCHBOARD_WEB_DIR`, else this repository's `web/dist`. */
export const WEB_DIR =
  process.env.SWITCHBOARD_WEB_DIR ?? fileURLToPath(new URL("../dist", import.meta.url));
/** The first admin's account id. */
export const ADMIN = "admin";
/** Bounds every wait in the harness, so a broken server fails a test instead of hanging it. */
export const WAIT_MS = 20_000;

/** What `after` hooks hang on: node:test's `TestContext` (or `SuiteContext`) has it. */
export interface Teardown {
  after(fn: () => void | Promise<void>): void;
}

/** The typed clients of every service, over one HTTP/2 connection. */
export interface Clients {
  readonly auth: Client<typeof AuthService>;
  readonly core: Client<typeof CoreService>;
  readonly processor: Client<typeof ProcessorService>;
  readonly workflow: Client<typeof WorkflowService>;
  readonly routing: Client<typeof RoutingService>;
  readonly admin: Client<typeof AdminService>;
}

/** Who signs in. */
export type Who = { agentId: string } | { accountId: string };

// ----- processes and temporary directories --------------------------------------------------

// Last resort when the test process itself dies: no server outlives it.
const running = new Set<ChildProcess>();
const temporary = new Set<string>();
process.on("exit", () => {
  for (const child of running) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after the test. */
export function tempDir(t: Teardown, prefix: string): string {
  const dir = makeTemp(prefix);
  t.after(() => removeTemp(dir));
  return dir;
}

function makeTemp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `switchboard-${prefix}-`));
  temporary.add(dir);
  return dir;
}

function removeTemp(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  temporary.delete(dir);
}

// ----- the server --------------------------------------------------------------------------

export interface ServerOptions {
  /** `--presence-grace-ms`; the server's default (60 s) when left out. */
  presenceGraceMs?: number;
  /** `--web-servers`: the servers the desktop compares (empty: this origin only). */
  webServers?: string[];
  /** `--listen` address; `127.0.0.1:0` (a free port) when left out. */
  listen?: string;
  /** Further `serve` arguments. */
  args?: string[];
  /** `--web-dir`; `WEB_DIR` when left out. */
  webDir?: string;
}

export interface Server {
  /** `127.0.0.1:PORT`, as the server logged it. */
  readonly addr: string;
  /** `http://127.0.0.1:PORT`: gRPC, gRPC-web and the pages. */
  readonly url: string;
  readonly pid: number;
  readonly dataDir: string;
  /** The first admin's one-time secret. */
  readonly adminSecret: string;
  /** Clients signed in as the first admin. */
  readonly admin: Clients;
  /** Everything the server logged so far. */
  logs(): string;
  /** Clients carrying `token` (none: unauthenticated). */
  clients(token?: TokenSource): Clients;
  /** Signs `who` in; the login's tokens. */
  signIn(who: Who, password: string): Promise<LoginResponse>;
  /** Clients signed in as `who` (signing in again as their token ages). */
  clientsAs(who: Who, password: string): Promise<Clients>;
  /** Kills the server by PID and waits for it to exit (also done after the test). */
  stop(): Promise<void>;
}

/** Starts `switchboard serve` on a temporary data directory; it is killed after the test. */
export async function startServer(t: Teardown, options: ServerOptions = {}): Promise<Server> {
  const dataDir = makeTemp("data");
  const args = [
    "serve",
    "--listen",
    options.listen ?? "127.0.0.1:0",
    "--data-dir",
    dataDir,
    "--web-dir",
    options.webDir ?? WEB_DIR,
  ];
  if (options.presenceGraceMs !== undefined) {
    args.push("--presence-grace-ms", String(options.presenceGraceMs));
  }
  if (options.webServers !== undefined && options.webServers.length > 0) {
    args.push("--web-servers", options.webServers.join(","));
  }
  args.push(...(options.args ?? []));
  const child = spawn(SERVER_BIN, args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // Gone already.
      }
      await exited;
    }
    running.delete(child);
  };
  // One hook, so the directory goes only once the server is gone.
  t.after(async () => {
    await stop();
    removeTemp(dataDir);
  });

  let log = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    log += chunk;
    if (process.env.SWITCHBOARD_TEST_LOGS) process.stderr.write(chunk);
  });
  const addr = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the server did not log its address in time; its log:\n${log}`)),
      WAIT_MS,
    );
    const look = () => {
      const match = /switchboard serving.*?\baddr=(\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        child.stderr!.off("data", look);
        resolve(match[1]!);
      }
    };
    child.stderr!.on("data", look);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code ?? signal}) before serving; its log:\n${log}`));
    });
    look();
  });
  const url = `http://${addr}`;
  const adminSecret = await readSecret(join(dataDir, "bootstrap-admin.secret"));
  const clients = (token?: TokenSource) => grpcClients(url, token);
  const signIn = (who: Who, password: string) => login(clients(), who, password);
  const admin = await signedClients(url, { accountId: ADMIN }, adminSecret);
  return {
    addr,
    url,
    pid: child.pid!,
    dataDir,
    adminSecret,
    admin,
    logs: () => log,
    clients,
    signIn,
    clientsAs: (who, password) => signedClients(url, who, password),
    stop,
  };
}

/** The bootstrap secret, once the server has written it. */
async function readSecret(path: string): Promise<string> {
  return waitFor(`the bootstrap secret at ${path}`, async () => {
    try {
      return readFileSync(path, "utf8").trim() || undefined;
    } catch {
      return undefined;
    }
  });
}

/** Gives a free local port (for a server that must know its own address before it starts,
 * as in its `--web-servers` list). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

// ----- gRPC clients --------------------------------------------------------------------------

/** What a call's bearer token comes from: a fixed token, or a function giving the current one. */
export type TokenSource = string | undefined | (() => Promise<string | undefined> | string | undefined);

/** Clients of the server at `url` over real HTTP/2, carrying the token `token` gives. */
export function grpcClients(url: string, token?: TokenSource): Clients {
  const bearer: Interceptor = (next) => async (req) => {
    const current = typeof token === "function" ? await token() : token;
    if (current) req.header.set("authorization", `Bearer ${current}`);
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl: url, interceptors: [bearer] });
  return {
    auth: createClient(AuthService, transport),
    core: createClient(CoreService, transport),
    processor: createClient(ProcessorService, transport),
    workflow: createClient(WorkflowService, transport),
    routing: createClient(RoutingService, transport),
    admin: createClient(AdminService, transport),
  };
}

/** Clients signed in as `who` that sign in again once the token has lived half its life, so
 * a test may outlast a short `--access-token-ttl-secs`. */
export async function signedClients(url: string, who: Who, password: string): Promise<Clients> {
  const anonymous = grpcClients(url);
  let token = "";
  let renewAt = 0;
  const fresh = async () => {
    if (Date.now() >= renewAt) {
      const answer = await login(anonymous, who, password);
      token = answer.accessToken;
      renewAt = Date.now() + (Number(answer.expiresInSecs) * 1000) / 2;
    }
    return token;
  };
  await fresh();
  return grpcClients(url, fresh);
}

/** Signs `who` in through `clients`. */
export async function login(clients: Clients, who: Who, password: string): Promise<LoginResponse> {
  const principal =
    "agentId" in who
      ? { case: "agentId" as const, value: who.agentId }
      : { case: "accountId" as const, value: who.accountId };
  return clients.auth.login({ principal, password });
}

// ----- routing configuration -----------------------------------------------------------------

export interface MrdOptions {
  name?: string;
  maxTasks?: number;
  /** Whether other MRDs may offer to an agent working here; false: they may not. */
  interruptible?: boolean;
  offerTimeoutSeconds?: number;
  wrapUpTimeoutSeconds?: number;
  ronaAction?: RonaAction;
  logoutAction?: LogoutAction;
}

/** Writes an MRD: `chat` by default, 2 tasks, offers waiting 30 s, no wrap-up timeout,
 * NOT_READY on RONA, tasks requeued on logout. */
export async function upsertMrd(admin: Clients, options: MrdOptions = {}): Promise<string> {
  const name = options.name ?? "chat";
  await admin.admin.upsertMrd({
    mrd: {
      name,
      maxTasks: options.maxTasks ?? 2,
      interruptible: options.interruptible ?? false,
      offerTimeoutSeconds: options.offerTimeoutSeconds ?? 30,
      wrapUpTimeoutSeconds: options.wrapUpTimeoutSeconds ?? 0,
      ronaAction: options.ronaAction ?? RonaAction.NOT_READY,
      logoutAction: options.logoutAction ?? LogoutAction.REQUEUE,
    },
  });
  return name;
}

/** Writes a queue of `mrd` with one step selecting on `expression`, no timeouts. */
export async function upsertQueue(
  admin: Clients,
  mrd: string,
  name: string,
  expression: string,
): Promise<void> {
  await admin.admin.upsertQueue({
    queue: { name, mrd, steps: [{ expression, timeoutSeconds: 0 }], taskTtlSeconds: 0 },
  });
}

/** Writes a reason code. */
export async function upsertReasonCode(
  admin: Clients,
  code: string,
  label: string,
  category: ReasonCategory = ReasonCategory.NOT_READY,
): Promise<void> {
  await admin.admin.upsertReasonCode({ reasonCode: { code, label, category } });
}

/** Writes an agent with `password` (and these attributes), role ROLE_AGENT. */
export async function upsertAgent(
  admin: Clients,
  agentId: string,
  password: string,
  attributes: Record<string, number> = {},
): Promise<void> {
  await admin.admin.upsertAgent({
    agent: { agentId, displayName: `Agent ${agentId}`, password, attributes },
  });
}

/** Writes an account (a supervisor, an admin, a channel's integration) with `secret`. */
export async function upsertAccount(
  admin: Clients,
  accountId: string,
  secret: string,
  roles: Role[],
): Promise<UpsertAccountResponse> {
  return admin.admin.upsertAccount({
    account: { accountId, displayName: accountId, secret, roles },
  });
}

export interface ContactCenter {
  mrd: string;
  queue: string;
  agents: string[];
  password: string;
  reasonCodes: { code: string; label: string }[];
  supervisor: { accountId: string; secret: string };
  integration: { accountId: string; secret: string };
}

export interface ContactCenterOptions {
  mrd?: MrdOptions;
  /** Agent ids; `["ana", "ben"]` when left out. */
  agents?: string[];
  password?: string;
  /** NOT_READY reason codes; `lunch` and `training` when left out. */
  reasonCodes?: { code: string; label: string }[];
}

/** Configures a whole contact center: the MRD, queue `support` (every agent with the
 * `support` skill; each agent has it), the reason codes, the agents, a supervisor account
 * (`floor`) and a channel's integration account (`chat-channel`). */
export async function configureContactCenter(
  server: Server,
  options: ContactCenterOptions = {},
): Promise<ContactCenter> {
  const admin = server.admin;
  const mrd = await upsertMrd(admin, options.mrd);
  const queue = "support";
  await upsertQueue(admin, mrd, queue, "support >= 1");
  const reasonCodes = options.reasonCodes ?? [
    { code: "lunch", label: "Lunch" },
    { code: "training", label: "Training" },
  ];
  for (const { code, label } of reasonCodes) await upsertReasonCode(admin, code, label);
  const agents = options.agents ?? ["ana", "ben"];
  const password = options.password ?? "desk-Pw-42";
  for (const agent of agents) await upsertAgent(admin, agent, password, { support: 5 });
  const supervisor = { accountId: "floor", secret: "floor-Secret-42" };
  await upsertAccount(admin, supervisor.accountId, supervisor.secret, [Role.SUPERVISOR]);
  const integration = { accountId: "chat-channel", secret: "channel-Secret-42" };
  await upsertAccount(admin, integration.accountId, integration.secret, [Role.INTEGRATION]);
  return { mrd, queue, agents, password, reasonCodes, supervisor, integration };
}

// ----- a channel ------------------------------------------------------------------------------

export interface Channel {
  /** Clients signed in as the channel's integration account. */
  readonly clients: Clients;
  /** Submits a task (`NewTask`); `mrd` and `queue` default to the contact center's. */
  newTask(request?: MessageInitShape<typeof NewTaskRequestSchema>): Promise<NewTaskResponse>;
}

/** A channel server signed in with the contact center's integration account. */
export async function channel(server: Server, center: ContactCenter): Promise<Channel> {
  const clients = await server.clientsAs(
    { accountId: center.integration.accountId },
    center.integration.secret,
  );
  let sequence = 0;
  return {
    clients,
    newTask: (request = {}) => {
      sequence += 1;
      const full: MessageInitShape<typeof NewTaskRequestSchema> = {
        requestId: `chat-${sequence}-${Date.now()}`,
        mrd: center.mrd,
        queue: center.queue,
        conversationId: `conversation-${sequence}`,
        attributes: { customer: `Customer ${sequence}` },
        ...request,
      };
      return clients.routing.newTask(full);
    },
  };
}

// ----- waiting -------------------------------------------------------------------------------

/** Polls `probe` until it gives a value (not `undefined`, `null` or `false`); fails naming
 * `what` after `timeoutMs`. Probe errors count as "not yet" and the last one is reported. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : "";
      throw new Error(`timed out waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

// ----- the browser ---------------------------------------------------------------------------

/** Chromium's flags for a quiet, reproducible headless run. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Browser {
  readonly context: BrowserContext;
  /** A new page at 1366x768, opened at `url` when given. */
  newPage(url?: string): Promise<Page>;
  close(): Promise<void>;
}

/** Launches Debian's Chromium headless on a fresh profile; closed after the test. */
export async function launchBrowser(t: Teardown): Promise<Browser> {
  const profile = makeTemp("chromium");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SWITCHBOARD_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1366, height: 768 },
  });
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await context.close();
    }
  };
  // One hook, so the profile goes only once Chromium is gone.
  t.after(async () => {
    await close();
    removeTemp(profile);
  });
  // The persistent context opens with one blank page: reuse it first.
  const spare: Page[] = [...context.pages()];
  return {
    context,
    close,
    newPage: async (url?: string) => {
      const page = spare.shift() ?? (await context.newPage());
      if (url !== undefined) await page.goto(url);
      return page;
    },
  };
}

/** Waits until `locator`'s text matches `pattern`; its text. */
export async function waitForText(
  locator: Locator,
  pattern: RegExp | string,
  timeoutMs = WAIT_MS,
): Promise<string> {
  const matches = (text: string) =>
    typeof pattern === "string" ? text.includes(pattern) : pattern.test(text);
  let last = "";
  try {
    return await waitFor(
      `text ${String(pattern)}`,
      async () => {
        last = (await locator.textContent({ timeout: 1000 })) ?? "";
        return matches(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch {
    throw new Error(`timed out waiting for ${locator} to show ${String(pattern)}; it shows ${JSON.stringify(last)}`);
  }
}

/** Where the screenshot `name` goes: `$SWITCHBOARD_SCREENSHOTS/<name>` when that is set, else
 * a temporary directory (the shot is still taken, so the code path is always exercised). */
export function screenshotPath(t: Teardown, name: string): string {
  const dir = process.env.SWITCHBOARD_SCREENSHOTS || tempDir(t, "shots");
  return join(dir, name);
}

// ----- a network that can be cut -------------------------------------------------------------

export interface Proxy {
  /** `http://127.0.0.1:PORT`, forwarding to the target. */
  readonly url: string;
  /** Breaks every open connection at once, as a lost network does. */
  cut(): void;
  /** While down, new connections are dropped as soon as they open. */
  setDown(down: boolean): void;
  /** Connections forwarded so far. */
  readonly connections: number;
}

/** A TCP proxy to `target` (`host:port`); closed after the test. A page opened through it
 * talks to the server only through it, so cutting it drops the page's network and nothing
 * else. */
export async function startProxy(t: Teardown, target: string): Promise<Proxy> {
  const [host, port] = splitHostPort(target);
  const open = new Set<Socket>();
  let down = false;
  let connections = 0;
  const server: NetServer = createServer((incoming) => {
    if (down) {
      incoming.destroy();
      return;
    }
    connections += 1;
    const outgoing = tcpConnect(port, host);
    for (const [a, b] of [
      [incoming, outgoing],
      [outgoing, incoming],
    ] as const) {
      open.add(a);
      a.on("error", () => b.destroy());
      a.on("close", () => {
        open.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no port");
  const cut = () => {
    // destroy(), not resetAndDestroy(): the latter on a piped socket leaves node spinning at
    // exit (Environment::CleanupHandles) on node 20. A closed socket is enough for both ends.
    for (const socket of open) socket.destroy();
    open.clear();
  };
  t.after(async () => {
    cut();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut,
    setDown: (value) => {
      down = value;
    },
    get connections() {
      return connections;
    },
  };
}

function splitHostPort(target: string): [string, number] {
  const at = target.lastIndexOf(":");
  return [target.slice(0, at), Number(target.slice(at + 1))];
}
