// What the wallboard knows: the open tasks, every agent's state per MRD, the queues, and the
// answers counted for the service level. Filled from the initial lists, then folded forward by
// routing events; no DOM and no network here, so it can be reasoned about (and tested) alone.
//
// Lists and the watch do not share one revision: each listed task or agent remembers the
// revision its listing reflects, and an event at or below it is already in it and is skipped.
// The watch starts at the lowest listing revision + 1, so every change after any listing is seen.
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  AgentState,
  RequeueReason,
  TaskState,
  type AgentStatus,
  type RoutingEvent,
  type TaskStatus,
} from "../gen/switchboard/v1/routing_pb";

/** One open task. */
export interface TaskView {
  id: string;
  mrd: string;
  queue: string;
  state: TaskState;
  /** The agent it is offered to (OFFERED) or its owner; empty while it waits. */
  agent: string;
  participants: string[];
  /** When it arrived (the age and the service level count from here). */
  createdMs: number;
  /** When it last went into its queue (the wait counts from here, as GetQueueStats does). */
  queuedMs: number;
  /** Whether an acceptance of it was counted for the service level already. */
  answered: boolean;
  /** The revision this view reflects. */
  revision: bigint;
}

/** One agent's state on one MRD. */
export interface AgentMrdView {
  agentId: string;
  mrd: string;
  state: AgentState;
  reason: string;
  activeTasks: number;
  /** When the state began, as far as the wallboard knows. */
  sinceMs: number;
  /** False when the state began before the wallboard opened and the server gives no start
   * time for it: `sinceMs` is then when the wallboard first saw it ("at least"). */
  sinceExact: boolean;
}

interface AgentEntry {
  revision: bigint;
  mrds: Map<string, AgentMrdView>;
}

/** The service level of one queue: tasks answered, and how many within the threshold. */
export interface ServiceLevel {
  answered: number;
  within: number;
}

/** A queue named within its MRD. */
export interface QueueRef {
  mrd: string;
  name: string;
}

export const queueKey = (mrd: string, name: string): string => `${mrd}\u0000${name}`;

const ms = (t: Timestamp | undefined, fallback: number): number => (t ? timestampMs(t) : fallback);

/** What an event did that the page may want to react to beyond redrawing. */
export interface Applied {
  /** A task the board does not know about was named by a live event: read it. */
  unknownTaskId?: string;
}

export class Board {
  readonly tasks = new Map<string, TaskView>();
  readonly queues = new Map<string, QueueRef>();
  readonly serviceLevels = new Map<string, ServiceLevel>();
  private readonly agents = new Map<string, AgentEntry>();
  /** Tasks seen closed while events at or below their listing may still be replayed. */
  private readonly closed = new Map<string, bigint>();
  /** The highest listing revision: events above it cannot be stale for anything listed. */
  private listedUpTo = 0n;

  /** `thresholdMs`: a task answered within this long of arriving meets the service level. */
  constructor(readonly thresholdMs: number) {}

  /** Forgets the queues, tasks and agents (before a relist); the service level counts stay. */
  reset(): void {
    this.queues.clear();
    this.tasks.clear();
    this.agents.clear();
    this.closed.clear();
    this.listedUpTo = 0n;
  }

  addQueue(mrd: string, name: string): void {
    const key = queueKey(mrd, name);
    if (!this.queues.has(key)) this.queues.set(key, { mrd, name });
  }

  /** A page of ListTasks at `revision`. */
  listTasks(tasks: readonly TaskStatus[], revision: bigint, nowMs: number): void {
    this.listed(revision);
    for (const t of tasks) this.putTask(t, revision, nowMs);
  }

  /** One task as GetTaskState answered it at `revision`. */
  putTask(t: TaskStatus, revision: bigint, nowMs: number): void {
    const known = this.tasks.get(t.taskId);
    if ((known && known.revision >= revision) || (this.closed.get(t.taskId) ?? -1n) >= revision) return;
    if (t.state === TaskState.CLOSED) {
      this.tasks.delete(t.taskId);
      this.closed.set(t.taskId, revision);
      return;
    }
    this.addQueue(t.mrd, t.queue);
    this.tasks.set(t.taskId, {
      id: t.taskId,
      mrd: t.mrd,
      queue: t.queue,
      state: t.state,
      agent: t.state === TaskState.OFFERED ? t.offeredAgentId : t.ownerAgentId,
      participants: [...t.participantAgentIds],
      createdMs: ms(t.createdTime, nowMs),
      queuedMs: ms(t.queuedTime, nowMs),
      // Accepted before the wallboard saw it: not counted (the wallboard counts what it sees).
      answered: t.state !== TaskState.QUEUED && t.state !== TaskState.OFFERED,
      revision,
    });
  }

  /** A page of ListAgentStates at `revision`. */
  listAgents(agents: readonly AgentStatus[], revision: bigint, nowMs: number): void {
    this.listed(revision);
    for (const a of agents) {
      const known = this.agents.get(a.agentId);
      if (known && known.revision >= revision) continue;
      const mrds = new Map<string, AgentMrdView>();
      for (const m of a.mrds) {
        // The server keeps when an agent last became available, which is when READY began;
        // other states carry no start time.
        const exact = m.state === AgentState.READY && m.availableSinceTime !== undefined;
        mrds.set(m.mrd, {
          agentId: a.agentId,
          mrd: m.mrd,
          state: m.state,
          reason: m.reasonCode,
          activeTasks: m.activeTaskIds.length,
          sinceMs: exact ? ms(m.availableSinceTime, nowMs) : nowMs,
          sinceExact: exact,
        });
      }
      this.agents.set(a.agentId, { revision, mrds });
    }
  }

  private listed(revision: bigint): void {
    if (revision > this.listedUpTo) this.listedUpTo = revision;
  }

  /** Folds one routing event in. */
  apply(event: RoutingEvent): Applied {
    const rev = event.revision;
    const at = ms(event.time, Date.now());
    if (rev > this.listedUpTo && this.closed.size > 0) this.closed.clear();
    const e = event.event;
    switch (e.case) {
      case "agentStateChanged": {
        const v = e.value;
        let agent = this.agents.get(v.agentId);
        if (!agent) {
          agent = { revision: 0n, mrds: new Map() };
          this.agents.set(v.agentId, agent);
        }
        if (rev <= agent.revision) return {};
        agent.revision = rev;
        if (v.state === AgentState.LOGOUT) {
          agent.mrds.delete(v.mrd);
          return {};
        }
        const before = agent.mrds.get(v.mrd);
        const same = before !== undefined && before.state === v.state;
        agent.mrds.set(v.mrd, {
          agentId: v.agentId,
          mrd: v.mrd,
          state: v.state,
          reason: v.reasonCode,
          activeTasks: v.activeTasks,
          sinceMs: same ? before.sinceMs : at,
          sinceExact: same ? before.sinceExact : true,
        });
        return {};
      }
      case "taskQueued": {
        const v = e.value;
        if (this.stale(v.taskId, rev) || this.tasks.has(v.taskId)) return {};
        this.addQueue(v.mrd, v.queue);
        this.tasks.set(v.taskId, {
          id: v.taskId,
          mrd: v.mrd,
          queue: v.queue,
          state: TaskState.QUEUED,
          agent: "",
          participants: [],
          createdMs: at,
          queuedMs: at,
          answered: false,
          revision: rev,
        });
        return {};
      }
      case "taskAgentSelected": {
        const v = e.value;
        const task = this.live(v.taskId, rev);
        if (!task) return this.unknown(v.taskId, rev);
        task.state = TaskState.OFFERED;
        task.agent = v.agentId;
        return {};
      }
      case "taskStateChanged": {
        const v = e.value;
        if (v.state === TaskState.CLOSED) {
          if (this.stale(v.taskId, rev)) return {};
          this.tasks.delete(v.taskId);
          if (rev <= this.listedUpTo) this.closed.set(v.taskId, rev);
          return {};
        }
        const task = this.live(v.taskId, rev);
        if (!task) return this.unknown(v.taskId, rev);
        if (v.participantLeftAgentId) {
          // A conference participant left; the task's own state did not change.
          task.participants = task.participants.filter((p) => p !== v.participantLeftAgentId);
          return {};
        }
        if (v.state === TaskState.QUEUED) {
          // Back in its queue (RONA, rejected, its agent logged out): it waits from now. A widened
          // search (no requeue reason) leaves it where it was.
          if (v.requeueReason !== RequeueReason.UNSPECIFIED) {
            task.queuedMs = at;
            task.agent = "";
            task.participants = [];
          }
        } else if (v.state === TaskState.ACTIVE && task.state === TaskState.OFFERED) {
          this.answer(task, at);
          task.agent = v.agentId || task.agent;
        } else if (v.agentId) {
          task.agent = v.agentId;
        }
        task.state = v.state;
        return {};
      }
      case "taskAgentTransferred": {
        const v = e.value;
        const task = this.live(v.taskId, rev);
        if (!task) return this.unknown(v.taskId, rev);
        task.agent = v.recipientAgentId;
        return {};
      }
      case "taskConferenced": {
        const v = e.value;
        const task = this.live(v.taskId, rev);
        if (!task) return this.unknown(v.taskId, rev);
        if (!task.participants.includes(v.participantAgentId)) task.participants.push(v.participantAgentId);
        return {};
      }
      default:
        return {};
    }
  }

  /** Whether an event at `rev` about `taskId` is already in what the board holds. */
  private stale(taskId: string, rev: bigint): boolean {
    const known = this.tasks.get(taskId);
    return (known !== undefined && rev <= known.revision) || rev <= (this.closed.get(taskId) ?? -1n);
  }

  /** The task an event at `rev` changes, with its revision moved on; none when stale or unknown. */
  private live(taskId: string, rev: bigint): TaskView | undefined {
    const task = this.tasks.get(taskId);
    if (!task || rev <= task.revision) return undefined;
    task.revision = rev;
    return task;
  }

  private unknown(taskId: string, rev: bigint): Applied {
    return this.stale(taskId, rev) || this.tasks.has(taskId) ? {} : { unknownTaskId: taskId };
  }

  private answer(task: TaskView, atMs: number): void {
    if (task.answered) return;
    task.answered = true;
    const key = queueKey(task.mrd, task.queue);
    const sl = this.serviceLevels.get(key) ?? { answered: 0, within: 0 };
    sl.answered += 1;
    if (atMs - task.createdMs <= this.thresholdMs) sl.within += 1;
    this.serviceLevels.set(key, sl);
  }

  /** Every agent's state on `mrd`, in agent id order. */
  agentsOn(mrd: string): AgentMrdView[] {
    const rows: AgentMrdView[] = [];
    for (const entry of this.agents.values()) {
      const row = entry.mrds.get(mrd);
      if (row) rows.push(row);
    }
    return rows.sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0));
  }

  /** The MRDs some agent is logged in on. */
  agentMrds(): Set<string> {
    const mrds = new Set<string>();
    for (const entry of this.agents.values()) for (const m of entry.mrds.keys()) mrds.add(m);
    return mrds;
  }

  /** One agent's state on one MRD, if logged in there. */
  agentOn(agentId: string, mrd: string): AgentMrdView | undefined {
    return this.agents.get(agentId)?.mrds.get(mrd);
  }

  /** A queue's waiting tasks and when the longest-waiting one went in (as GetQueueStats counts). */
  waiting(mrd: string, queue: string): { count: number; oldestQueuedMs: number | undefined } {
    let count = 0;
    let oldest: number | undefined;
    for (const t of this.tasks.values()) {
      if (t.state !== TaskState.QUEUED || t.mrd !== mrd || t.queue !== queue) continue;
      count += 1;
      if (oldest === undefined || t.queuedMs < oldest) oldest = t.queuedMs;
    }
    return { count, oldestQueuedMs: oldest };
  }

  /** The tasks being handled (offered, active, paused, wrapping up), oldest first. */
  inProgress(): TaskView[] {
    return [...this.tasks.values()]
      .filter((t) => t.state !== TaskState.QUEUED)
      .sort((a, b) => a.createdMs - b.createdMs || (a.id < b.id ? -1 : 1));
  }
}
