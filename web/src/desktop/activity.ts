// The desktop's recent activity: each event of the feed said in a line a person reads
// ("Task 7f3c… transferred from ana to ben"), so an agent sees what happened while it looked
// away or while its network was down (replayed events included).
import type { ClientEvent } from "../gen/switchboard/v1/core_pb";
import { ActionChangeType } from "../gen/switchboard/v1/workflow_pb";
import { CloseReason, RequeueReason, TaskState } from "../gen/switchboard/v1/routing_pb";
import { agentStateLabel, millis, taskStateLabel } from "./state";

export interface Activity {
  revision: bigint;
  /** When it happened (ms since the epoch), when the event says. */
  at?: number;
  text: string;
}

/** The line for one feed event; undefined for events not worth a line. */
export function activityOf(event: ClientEvent): Activity | undefined {
  const revision = event.revision;
  const { case: kind, value } = event.event;
  if (kind === "sessionState") {
    if (value.name === "state.updated") {
      const enabled = value.actions.filter((a) => a.type === ActionChangeType.ENABLE).map((a) => a.name);
      return { revision, text: `View ${value.viewState}; enabled: ${enabled.join(", ") || "none"}` };
    }
    return { revision, text: `Session ${value.name}` };
  }
  if (kind !== "routing") return undefined;
  const at = millis(value.time);
  const e = value.event;
  switch (e.case) {
    case "agentStateChanged": {
      const reason = e.value.reasonCode ? ` (${e.value.reasonCode})` : "";
      return { revision, at, text: `${e.value.mrd}: ${agentStateLabel(e.value.state)}${reason}` };
    }
    case "taskQueued":
      return { revision, at, text: `Task ${e.value.taskId} queued on ${e.value.mrd}/${e.value.queue}` };
    case "taskAgentSelected":
      return { revision, at, text: `Task ${e.value.taskId} offered to ${e.value.agentId}` };
    case "taskStateChanged": {
      let detail = "";
      if (e.value.state === TaskState.CLOSED && e.value.closeReason !== CloseReason.UNSPECIFIED) {
        detail = ` (${CloseReason[e.value.closeReason]})`;
      } else if (e.value.state === TaskState.QUEUED && e.value.requeueReason !== RequeueReason.UNSPECIFIED) {
        detail = ` (${RequeueReason[e.value.requeueReason]})`;
      }
      const who = e.value.participantLeftAgentId
        ? `, ${e.value.participantLeftAgentId} left`
        : e.value.agentId
          ? `, ${e.value.agentId}`
          : "";
      return { revision, at, text: `Task ${e.value.taskId}: ${taskStateLabel(e.value.state)}${detail}${who}` };
    }
    case "taskAgentTransferred":
      return {
        revision,
        at,
        text: `Task ${e.value.taskId} transferred from ${e.value.ownerAgentId} to ${e.value.recipientAgentId}`,
      };
    case "taskConferenced":
      return {
        revision,
        at,
        text: `${e.value.ownerAgentId} added ${e.value.participantAgentId} to task ${e.value.taskId}`,
      };
    default:
      return undefined;
  }
}
