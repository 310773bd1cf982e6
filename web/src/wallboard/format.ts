// How the wallboard writes states and durations.
import { AgentState, TaskState } from "../gen/switchboard/v1/routing_pb";

/** The agent states a wallboard shows, in the order of its summary. */
export const AGENT_STATES: readonly AgentState[] = [
  AgentState.READY,
  AgentState.RESERVED,
  AgentState.ACTIVE,
  AgentState.BUSY,
  AgentState.WORK_READY,
  AgentState.PENDING_NOT_READY,
  AgentState.NOT_READY,
];

const AGENT_NAMES: Partial<Record<AgentState, string>> = {
  [AgentState.LOGIN]: "Logging in",
  [AgentState.NOT_READY]: "Not ready",
  [AgentState.READY]: "Ready",
  [AgentState.RESERVED]: "Reserved",
  [AgentState.ACTIVE]: "Active",
  [AgentState.BUSY]: "Busy",
  [AgentState.WORK_READY]: "Wrap-up",
  [AgentState.INTERRUPTED]: "Interrupted",
  [AgentState.PENDING_NOT_READY]: "Pending not ready",
  [AgentState.LOGOUT]: "Logged out",
  [AgentState.UNKNOWN]: "Unknown",
};

const TASK_NAMES: Partial<Record<TaskState, string>> = {
  [TaskState.QUEUED]: "Waiting",
  [TaskState.OFFERED]: "Offered",
  [TaskState.ACTIVE]: "Active",
  [TaskState.PAUSED]: "Paused",
  [TaskState.WRAPPING_UP]: "Wrapping up",
  [TaskState.CLOSED]: "Closed",
};

export const agentStateName = (s: AgentState): string => AGENT_NAMES[s] ?? `state ${s}`;
export const taskStateName = (s: TaskState): string => TASK_NAMES[s] ?? `state ${s}`;

/** The wire name of a state (`AGENT_STATE_READY` -> `READY`), for data attributes and tests. */
export const agentStateCode = (s: AgentState): string => AgentState[s] ?? String(s);
export const taskStateCode = (s: TaskState): string => TaskState[s] ?? String(s);

/** A duration as `m:ss`, or `h:mm:ss` from an hour on; never negative. */
export function duration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A clock time, `14:05:09`. */
export const clock = (ms: number): string =>
  new Date(ms).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
