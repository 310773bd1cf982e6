// What the desktop knows about its agent, folded from the feed's events and from the reads
// that re-sync it: the session's view and actions, the routing state per MRD, the pending
// offer and the tasks. No DOM and no calls here; the controller asks, the view shows.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { SessionStateEvent, SessionAction, ActionChange } from "../gen/switchboard/v1/workflow_pb";
import { ActionChangeType } from "../gen/switchboard/v1/workflow_pb";
import {
  AgentState,
  TaskState,
  type AgentStatus,
  type RoutingEvent,
  type TaskStatus,
} from "../gen/switchboard/v1/routing_pb";

/** One MRD's routing state of the agent. */
export interface MrdState {
  state: AgentState;
  reasonCode: string;
  activeTasks: number;
}

/** The offer waiting for this agent's answer. */
export interface Offer {
  taskId: string;
  mrd: string;
  queue: string;
  /** When the offer times out (ms since the epoch); unknown after a re-read that found an
   * offer the feed had not told of. */
  deadline?: number;
}

export class DesktopState {
  readonly agentId: string;
  resourceId = "";
  viewState = "";
  model = "";
  /** Every action of the session's model, in the model's order, with whether it is enabled. */
  readonly actions = new Map<string, boolean>();
  readonly mrds = new Map<string, MrdState>();
  offer: Offer | undefined;
  readonly tasks = new Map<string, TaskStatus>();
  /** The revisions the view and the routing state reflect, so an older read never
   * overwrites a newer event. */
  private sessionRevision = 0n;
  private routingRevision = 0n;
  /** The newest revision each task is known at, kept after it leaves the list. */
  private readonly taskRevisions = new Map<string, bigint>();

  constructor(agentId: string) {
    this.agentId = agentId;
  }

  /** A `state.updated` (or any view) event of the session. */
  applySessionEvent(event: SessionStateEvent): void {
    if (event.revision < this.sessionRevision) return;
    this.sessionRevision = event.revision;
    this.viewState = event.viewState;
    this.setActions(event.actions.map((a: ActionChange) => [a.name, a.type === ActionChangeType.ENABLE]));
  }

  /** The session's state as `GetSessionState` or `InvokeAction` answered it. */
  applySessionState(viewState: string, actions: SessionAction[], revision: bigint): void {
    if (revision < this.sessionRevision) return;
    this.sessionRevision = revision;
    this.viewState = viewState;
    this.setActions(actions.map((a) => [a.name, a.enabled]));
  }

  private setActions(actions: [string, boolean][]): void {
    this.actions.clear();
    for (const [name, enabled] of actions) this.actions.set(name, enabled);
  }

  /** A routing event about this agent; returns the tasks to re-read. */
  applyRoutingEvent(event: RoutingEvent): string[] {
    const { case: kind, value } = event.event;
    switch (kind) {
      case "agentStateChanged":
        if (value.agentId !== this.agentId) return [];
        this.routingRevision = maxOf(this.routingRevision, event.revision);
        this.mrds.set(value.mrd, {
          state: value.state,
          reasonCode: value.reasonCode,
          activeTasks: value.activeTasks,
        });
        return [];
      case "taskAgentSelected":
        if (value.agentId !== this.agentId) return [];
        this.routingRevision = maxOf(this.routingRevision, event.revision);
        this.offer = {
          taskId: value.taskId,
          mrd: value.mrd,
          queue: value.queue,
          deadline: millis(value.offerDeadlineTime),
        };
        return [];
      case "taskStateChanged":
        if (this.offer?.taskId === value.taskId && value.state !== TaskState.OFFERED) {
          this.routingRevision = maxOf(this.routingRevision, event.revision);
          this.offer = undefined;
        }
        if (value.state === TaskState.QUEUED) {
          // Back in its queue (rejected, timed out, its agent logged out): no longer ours.
          this.forgetTask(value.taskId, event.revision);
          return [];
        }
        return [value.taskId];
      case "taskAgentTransferred":
      case "taskConferenced":
        return [value.taskId];
      default:
        return [];
    }
  }

  /** The agent's routing state as `GetAgentState` answered it; returns the tasks to re-read
   * (those it holds, and those the list had that it may no longer hold). */
  applyAgentStatus(agent: AgentStatus, revision: bigint): string[] {
    if (revision < this.routingRevision) return [...this.tasks.keys()];
    this.routingRevision = revision;
    this.mrds.clear();
    const held = new Set<string>();
    for (const mrd of agent.mrds) {
      this.mrds.set(mrd.mrd, {
        state: mrd.state,
        reasonCode: mrd.reasonCode,
        activeTasks: mrd.activeTaskIds.length,
      });
      for (const taskId of mrd.activeTaskIds) held.add(taskId);
    }
    const pending = agent.pendingOfferTaskId;
    if (pending === "") {
      this.offer = undefined;
    } else if (this.offer?.taskId !== pending) {
      this.offer = { taskId: pending, mrd: "", queue: "" };
    }
    return [...new Set([...held, ...this.tasks.keys()])];
  }

  /** A task as `GetTaskState` answered it: kept while this agent is on it and it is open. */
  applyTask(task: TaskStatus, revision: bigint): void {
    const known = this.taskRevisions.get(task.taskId) ?? 0n;
    if (revision < known) return;
    this.taskRevisions.set(task.taskId, revision);
    const onIt =
      task.ownerAgentId === this.agentId || task.participantAgentIds.includes(this.agentId);
    const open = task.state !== TaskState.CLOSED && task.state !== TaskState.QUEUED &&
      task.state !== TaskState.OFFERED;
    if (onIt && open) this.tasks.set(task.taskId, task);
    else this.tasks.delete(task.taskId);
  }

  /** A task this agent may no longer read (transferred away, say), as of `revision`. */
  forgetTask(taskId: string, revision: bigint): void {
    const known = this.taskRevisions.get(taskId) ?? 0n;
    if (revision < known) return;
    this.taskRevisions.set(taskId, revision);
    this.tasks.delete(taskId);
  }
}

function maxOf(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** A timestamp in ms since the epoch; undefined when unset. */
export function millis(ts: Timestamp | undefined): number | undefined {
  return ts === undefined ? undefined : timestampDate(ts).getTime();
}

/** How a person reads an agent state. */
export function agentStateLabel(state: AgentState): string {
  switch (state) {
    case AgentState.LOGIN:
      return "Logging in";
    case AgentState.NOT_READY:
      return "Not ready";
    case AgentState.READY:
      return "Ready";
    case AgentState.RESERVED:
      return "Reserved (offer pending)";
    case AgentState.ACTIVE:
      return "Active";
    case AgentState.BUSY:
      return "Busy";
    case AgentState.WORK_READY:
      return "Wrap-up";
    case AgentState.INTERRUPTED:
      return "Interrupted";
    case AgentState.PENDING_NOT_READY:
      return "Not ready after current tasks";
    case AgentState.LOGOUT:
      return "Logged out";
    default:
      return "Unknown";
  }
}

/** How a person reads a task state. */
export function taskStateLabel(state: TaskState): string {
  switch (state) {
    case TaskState.QUEUED:
      return "Queued";
    case TaskState.OFFERED:
      return "Offered";
    case TaskState.ACTIVE:
      return "Active";
    case TaskState.PAUSED:
      return "Paused";
    case TaskState.WRAPPING_UP:
      return "Wrapping up";
    case TaskState.CLOSED:
      return "Closed";
    default:
      return "Unknown";
  }
}
