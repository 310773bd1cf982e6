// The desktop's controller: signs the agent in on the chosen server, opens its feed, binds the
// processor and the workflow manager, prepares and binds the session, keeps `DesktopState`
// in step with the feed (re-reading after a reconnection) and sends the agent's commands.
// Every refusal is said in the page's alert region with the server's message.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ClientEvent, Connected } from "../gen/switchboard/v1/core_pb";
import { ReasonCategory } from "../gen/switchboard/v1/admin_pb";
import { PrepareSessionResult } from "../gen/switchboard/v1/processor_pb";
import { AgentState, TaskState } from "../gen/switchboard/v1/routing_pb";
import type { Alerts } from "../shared/alerts";
import { connect, describe, type Services } from "../shared/api";
import { activityOf } from "./activity";
import { Feed, type FeedStatus } from "./feed";
import { configuredServers, pick, survey, type ServerView } from "./servers";
import { DesktopState } from "./state";
import { Tokens } from "./tokens";
import type { DesktopView, Handlers } from "./view";

const PROCESSOR_TYPE = "switchboard.processor";
const WORKFLOW_TYPE = "switchboard.workflow.manager";

/** One signed-in agent on one server. */
interface Signed {
  agentId: string;
  server: string;
  api: Services;
  tokens: Tokens;
  feed: Feed;
  state: DesktopState;
  processorId: string;
  workflowId: string;
  renewedAt?: Date;
}

export class Desktop implements Handlers {
  private signed: Signed | undefined;
  private signingIn = false;
  /** Tasks being re-read, and those to re-read once more when that read is back. */
  private readonly reading = new Set<string>();
  private readonly reread = new Set<string>();

  constructor(
    private readonly view: DesktopView,
    private readonly alerts: Alerts,
    private readonly origin: string,
  ) {}

  /** Shows the configured servers and their load (before anyone signs in). */
  async start(): Promise<void> {
    this.view.showSignIn(false);
    this.view.setConnection("Signed out", "signed-out");
    await this.chooseServer();
  }

  /** Asks every configured server how it is and picks the least-loaded one. */
  private async chooseServer(): Promise<ServerView | undefined> {
    let urls: string[];
    try {
      urls = await configuredServers(this.origin);
    } catch (error) {
      this.alerts.fail("Reading the list of servers failed; using this page's server", error);
      urls = [this.origin];
    }
    const servers = await survey(urls);
    const chosen = pick(servers);
    this.view.showServers(servers, chosen?.url);
    if (chosen === undefined) {
      this.alerts.say("No configured server accepts clients at the moment; try again shortly.");
    }
    return chosen;
  }

  // ----- signing in and out --------------------------------------------------------------

  signIn(agentId: string, password: string): void {
    if (this.signingIn || this.signed !== undefined) return;
    this.signingIn = true;
    this.view.showSignIn(true);
    this.view.setConnection("Signing in…", "connecting");
    void this.doSignIn(agentId, password).finally(() => {
      this.signingIn = false;
    });
  }

  private async doSignIn(agentId: string, password: string): Promise<void> {
    let tokens: Tokens | undefined;
    let feed: Feed | undefined;
    try {
      const chosen = await this.chooseServer();
      if (chosen === undefined) throw new Error("no server to sign in on");
      let api: Services | undefined;
      tokens = new Tokens(() => api!.auth, {
        renewed: (at) => {
          if (this.signed) this.signed.renewedAt = at;
          this.showDiagnostics();
        },
        failed: (error, final) => {
          this.alerts.fail(final ? "Your sign-in ended; sign in again" : "Renewing your sign-in failed", error);
          if (final) this.endLocally("Signed out");
        },
      });
      api = connect(chosen.url, tokens.token);
      await tokens.login(agentId, password);
      const state = new DesktopState(agentId);
      const { processorId, workflowId } = await serviceIds(api);
      const signed: Signed = { agentId, server: chosen.url, api, tokens, state, processorId, workflowId, feed: undefined! };
      feed = this.newFeed(signed);
      signed.feed = feed;
      this.signed = signed;
      const connected = await feed.open();
      const prepared = await this.prepare(signed, connected, password, false);
      if (!prepared) {
        await this.signOutQuietly(signed);
        this.view.showSignIn(false);
        this.view.setConnection("Signed out", "signed-out");
        return;
      }
      this.view.showDesk(agentId);
      await this.loadReasonCodes(signed);
      await this.resync(signed);
    } catch (error) {
      feed?.stop();
      tokens?.forget();
      this.signed = undefined;
      this.alerts.fail("Signing in failed", error);
      this.view.showSignIn(false);
      this.view.setConnection("Signed out", "signed-out");
    }
  }

  /** Binds both services, prepares the session (asking before taking over an existing one
   * unless `override`), and binds the session on both; false when the person declined. */
  private async prepare(s: Signed, connected: Connected, password: string, override: boolean): Promise<boolean> {
    const clientId = connected.clientId;
    for (const serviceId of [s.processorId, s.workflowId]) {
      await s.api.core.bindService({ clientId, serviceId, requestId: requestId() });
    }
    const ask = (take: boolean) =>
      s.api.processor.prepareSession({
        serviceId: s.processorId,
        agent: { id: s.agentId, password },
        override: take,
        requestId: requestId(),
      });
    let prepared = await ask(override);
    if (prepared.result === PrepareSessionResult.CONFIRM) {
      const take = await this.view.askTakeOver(
        prepared.message || `Agent ${s.agentId} already has a session on another desktop.`,
      );
      if (!take) return false;
      prepared = await ask(true);
    }
    s.state.resourceId = prepared.resourceId;
    for (const serviceId of [s.processorId, s.workflowId]) {
      await s.api.core.bindResource({ clientId, serviceId, resourceId: prepared.resourceId, requestId: requestId() });
    }
    return true;
  }

  signOut(): void {
    const s = this.signed;
    if (s === undefined) return;
    void this.signOutQuietly(s).then(() => this.endLocally("Signed out"));
  }

  /** Unregisters the client (its session logs out unless another desktop has it) and ends
   * the refresh chain; refusals are said, and the page signs out anyway. */
  private async signOutQuietly(s: Signed): Promise<void> {
    s.feed.stop();
    try {
      if (s.feed.clientId) await s.api.core.unregisterClient({ clientId: s.feed.clientId, requestId: requestId() });
    } catch (error) {
      this.alerts.fail("Signing out of the server failed", error);
    }
    try {
      await s.tokens.logout();
    } catch (error) {
      this.alerts.fail("Ending your sign-in failed", error);
    }
  }

  /** Back to the sign-in form, forgetting everything of the agent. */
  private endLocally(status: string): void {
    const s = this.signed;
    this.signed = undefined;
    s?.feed.stop();
    s?.tokens.forget();
    this.reading.clear();
    this.reread.clear();
    this.view.showSignIn(false);
    this.view.setConnection(status, "signed-out");
  }

  // ----- the feed ----------------------------------------------------------------------------

  private newFeed(s: Signed): Feed {
    return new Feed(s.api, `desktop ${s.agentId}`, {
      reconnected: (_connected, startRevision) => {
        this.showDiagnostics();
        if (startRevision === 0n) {
          this.alerts.say("Some events could not be replayed; the desktop re-read its state.");
        }
        void this.resync(s);
      },
      event: (event) => this.onEvent(s, event),
      status: (status, detail) => this.onFeedStatus(s, status, detail),
      expired: (error) => void this.restart(s, error),
      renewToken: () => s.tokens.renew(),
    });
  }

  private onFeedStatus(s: Signed, status: FeedStatus, detail?: string): void {
    if (this.signed !== s) return;
    switch (status) {
      case "connecting":
        this.view.setConnection(`Connecting to ${s.server}…`, status);
        break;
      case "connected":
        this.view.setConnection(`Connected to ${s.server} as ${s.agentId}`, status);
        break;
      case "reconnecting":
        this.view.setConnection(`Reconnecting to ${s.server}…${detail ? ` (${detail})` : ""}`, status);
        break;
      case "stopped":
        if (detail) this.view.setConnection(`Disconnected: ${detail}`, status);
        break;
    }
    this.showDiagnostics();
  }

  private onEvent(s: Signed, event: ClientEvent): void {
    if (this.signed !== s) return;
    const activity = activityOf(event);
    if (activity) this.view.addActivity(activity);
    const { case: kind, value } = event.event;
    if (kind === "sessionState") {
      if (value.name === "session.taken_over") {
        this.alerts.say("Another desktop took this session over; this one is signed out.");
        void this.signOutQuietly(s).then(() => this.endLocally("Signed out: the session was taken over"));
        return;
      }
      if (value.name === "session.ended") {
        this.alerts.say("The session ended on the server; sign in again.");
        void this.signOutQuietly(s).then(() => this.endLocally("Signed out: the session ended"));
        return;
      }
      s.state.applySessionEvent(value);
    } else if (kind === "routing") {
      for (const taskId of s.state.applyRoutingEvent(value)) void this.readTask(s, taskId);
    }
    this.render();
  }

  /** The server forgot this client (away past its grace period): open a new one, prepare
   * the session again and re-read everything. */
  private async restart(s: Signed, error: ConnectError): Promise<void> {
    if (this.signed !== s) return;
    this.alerts.say(
      `The server no longer knew this desktop (${describe(error)}); it signed in again. ` +
        "An offer that was pending went to another agent.",
    );
    const feed = this.newFeed(s);
    s.feed = feed;
    try {
      const connected = await feed.open();
      // The agent's own token proves it: no password needed, and the old session is ours.
      await this.prepare(s, connected, "", true);
      await this.resync(s);
    } catch (e) {
      this.alerts.fail("Signing in again failed", e);
      this.endLocally("Signed out");
    }
  }

  /** Re-reads the session's view, the agent's routing state and its tasks. */
  private async resync(s: Signed): Promise<void> {
    try {
      const [session, agent] = await Promise.all([
        s.api.workflow.getSessionState({ resourceId: s.state.resourceId }),
        s.api.routing.getAgentState({ agentId: s.agentId }),
      ]);
      if (this.signed !== s) return;
      s.state.model = session.model;
      s.state.applySessionState(session.viewState, session.actions, session.revision);
      const tasks = agent.agent ? s.state.applyAgentStatus(agent.agent, agent.revision) : [];
      this.render();
      await Promise.all(tasks.map((taskId) => this.readTask(s, taskId)));
    } catch (error) {
      this.alerts.fail("Reading the desktop's state failed", error);
    }
  }

  /** Re-reads one task: kept while the agent is on it, dropped once it may no longer see it. */
  private async readTask(s: Signed, taskId: string): Promise<void> {
    if (this.reading.has(taskId)) {
      this.reread.add(taskId);
      return;
    }
    this.reading.add(taskId);
    try {
      const asOf = s.feed.lastRevision;
      try {
        const answer = await s.api.routing.getTaskState({ taskId });
        if (answer.task) s.state.applyTask(answer.task, answer.revision);
      } catch (error) {
        const gone =
          error instanceof ConnectError &&
          (error.code === Code.PermissionDenied || error.code === Code.NotFound);
        if (gone) s.state.forgetTask(taskId, asOf);
        else this.alerts.fail(`Reading task ${taskId} failed`, error);
      }
      if (this.signed === s) this.render();
    } finally {
      this.reading.delete(taskId);
    }
    if (this.reread.delete(taskId)) await this.readTask(s, taskId);
  }

  private async loadReasonCodes(s: Signed): Promise<void> {
    try {
      const answer = await s.api.admin.listReasonCodes({});
      this.view.setReasonCodes(
        answer.reasonCodes
          .filter((r) => r.category === ReasonCategory.NOT_READY)
          .map((r) => ({ code: r.code, label: r.label })),
      );
    } catch (error) {
      this.alerts.fail("Reading the reason codes failed", error);
    }
  }

  private render(): void {
    if (this.signed) this.view.render(this.signed.state);
    this.showDiagnostics();
  }

  private showDiagnostics(): void {
    const s = this.signed;
    this.view.setDiagnostics({
      server: s?.server,
      clientId: s?.feed.clientId,
      lastRevision: s?.feed.lastRevision,
      resumedFrom: s?.feed.resumedFrom,
      renewedAt: s?.renewedAt,
    });
  }

  // ----- the agent's commands ----------------------------------------------------------------

  /** Runs a call for the signed-in agent; a refusal or failure is said in the alert region
   * with the server's message. Resolves with the answer, or undefined when it failed. */
  async run<T>(what: string, call: (s: Signed) => Promise<T>): Promise<T | undefined> {
    const s = this.signed;
    if (s === undefined) {
      this.alerts.say(`${what}: not signed in`);
      return undefined;
    }
    try {
      return await call(s);
    } catch (error) {
      this.alerts.fail(`${what} refused`, error);
      return undefined;
    }
  }

  action(name: string): void {
    void this.run(`Action ${name}`, async (s) => {
      const answer = await s.api.workflow.invokeAction({ resourceId: s.state.resourceId, action: name, requestId: requestId() });
      s.state.applySessionState(answer.viewState, answer.actions, answer.revision);
      this.render();
    });
  }

  ready(): void {
    void this.run("Ready", async (s) => {
      const loggedIn = [...s.state.mrds.values()].some((m) => m.state !== AgentState.LOGOUT);
      if (!loggedIn) {
        // Not logged in for routing on any MRD: log in first (the agent's token proves it).
        await s.api.routing.loginAgent({ agentId: s.agentId, mrd: "", requestId: requestId() });
      }
      await s.api.routing.changeAgentState({ agentId: s.agentId, state: AgentState.READY, mrd: "", requestId: requestId() });
    });
  }

  notReady(reasonCode: string): void {
    void this.run("Not ready", (s) =>
      s.api.routing.changeAgentState({
        agentId: s.agentId,
        state: AgentState.NOT_READY,
        mrd: "",
        reasonCode,
        requestId: requestId(),
      }),
    );
  }

  accept(): void {
    void this.run("Accept", async (s) => {
      const taskId = offered(s);
      const answer = await s.api.routing.acceptTask({ taskId, agentId: s.agentId, requestId: requestId() });
      if (answer.task) s.state.applyTask(answer.task, answer.revision);
      this.render();
    });
  }

  reject(): void {
    void this.run("Reject", (s) =>
      s.api.routing.rejectTask({ taskId: offered(s), agentId: s.agentId, requestId: requestId() }),
    );
  }

  wrapUp(taskId: string): void {
    void this.changeTask(`Wrap-up of task ${taskId}`, taskId, TaskState.WRAPPING_UP);
  }

  close(taskId: string): void {
    void this.changeTask(`Closing task ${taskId}`, taskId, TaskState.CLOSED);
  }

  private changeTask(what: string, taskId: string, state: TaskState) {
    return this.run(what, async (s) => {
      const answer = await s.api.routing.changeTaskState({ taskId, state, requestId: requestId() });
      if (answer.task) s.state.applyTask(answer.task, answer.revision);
      this.render();
    });
  }

  transfer(taskId: string, agentId: string): void {
    void this.run(`Transfer of task ${taskId}`, async (s) => {
      const answer = await s.api.routing.transferTask({
        taskId,
        ownerAgentId: s.agentId,
        recipientAgentId: agentId,
        requestId: requestId(),
      });
      if (answer.task) s.state.applyTask(answer.task, answer.revision);
      this.render();
    });
  }

  conference(taskId: string, agentId: string): void {
    void this.run(`Conference on task ${taskId}`, async (s) => {
      const answer = await s.api.routing.conferenceTask({
        taskId,
        conferenceOwner: s.agentId,
        conferenceParticipant: agentId,
        mrd: "",
        requestId: requestId(),
      });
      if (answer.task) s.state.applyTask(answer.task, answer.revision);
      this.render();
    });
  }

  /** For the browser console: any call of any service, as this desktop, refusals said like
   * the page's own (`switchboardDesktop.call("routing", "acceptTask", {...})`). */
  call(service: string, method: string, request: unknown): Promise<unknown> {
    return this.run(`${service}.${method}`, (s) => {
      const client = (s.api as unknown as Record<string, Record<string, (r: unknown) => Promise<unknown>>>)[service];
      const fn = client?.[method];
      if (typeof fn !== "function") throw new Error(`no method ${service}.${method}`);
      return fn.call(client, request);
    });
  }

  /** The agent signed in, for the browser console. */
  get agentId(): string | undefined {
    return this.signed?.agentId;
  }
}

/** The pending offer's task; an error a person can read when there is none. */
function offered(s: Signed): string {
  const taskId = s.state.offer?.taskId;
  if (taskId === undefined) throw new Error("there is no offer to answer");
  return taskId;
}

/** The processor's and the workflow manager's ids, as this server lists them. */
async function serviceIds(api: Services): Promise<{ processorId: string; workflowId: string }> {
  const { services } = await api.core.listServices({});
  const processorId = services.find((x) => x.serviceType === PROCESSOR_TYPE)?.serviceId;
  const workflowId = services.find((x) => x.serviceType === WORKFLOW_TYPE)?.serviceId;
  if (!processorId || !workflowId) {
    throw new Error("this server lists no processor or no workflow manager service");
  }
  return { processorId, workflowId };
}

/** A fresh request id: a retry of the same call is then answered once. (`randomUUID` needs
 * a secure context; a page served over plain HTTP on a LAN address is not one.) */
function requestId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
