// The wallboard's fold (src/wallboard/board.ts) on its own, with the cases a live server does
// not produce on demand: events a listing already holds replayed after it, a search widening, a
// participant leaving, a resumed task, tombstones of closed tasks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AgentState,
  AgentStatusSchema,
  RequeueReason,
  RoutingEventSchema,
  TaskState,
  TaskStatusSchema,
} from "../src/gen/switchboard/v1/routing_pb";
import { Board, queueKey } from "../src/wallboard/board";

const T0 = 1_700_000_000_000;

type EventInit = MessageInitShape<typeof RoutingEventSchema>["event"];
const event = (revision: number, atMs: number, e: EventInit) =>
  create(RoutingEventSchema, { revision: BigInt(revision), time: timestampFromMs(atMs), event: e });

const queued = (rev: number, at: number, taskId: string, queue = "support") =>
  event(rev, at, { case: "taskQueued", value: { taskId, mrd: "chat", queue, priority: 5 } });
const selected = (rev: number, at: number, taskId: string, agentId: string) =>
  event(rev, at, { case: "taskAgentSelected", value: { taskId, agentId, mrd: "chat", queue: "support" } });
const changed = (
  rev: number,
  at: number,
  taskId: string,
  state: TaskState,
  more: { agentId?: string; requeueReason?: RequeueReason; participantLeftAgentId?: string } = {},
) => event(rev, at, { case: "taskStateChanged", value: { taskId, state, ...more } });
const agentState = (rev: number, at: number, agentId: string, state: AgentState, reasonCode = "") =>
  event(rev, at, { case: "agentStateChanged", value: { agentId, mrd: "chat", state, reasonCode } });

const task = (taskId: string, state: TaskState, createdMs: number, queuedMs: number, more: object = {}) =>
  create(TaskStatusSchema, {
    taskId,
    mrd: "chat",
    queue: "support",
    state,
    createdTime: timestampFromMs(createdMs),
    queuedTime: timestampFromMs(queuedMs),
    ...more,
  });

test("the waiting count and oldest wait follow queueing, offers, requeues and widening", () => {
  const b = new Board(20_000);
  b.apply(queued(1, T0, "t1"));
  b.apply(queued(2, T0 + 1000, "t2"));
  assert.deepEqual(b.waiting("chat", "support"), { count: 2, oldestQueuedMs: T0 });
  b.apply(selected(3, T0 + 2000, "t1", "ana"));
  assert.deepEqual(b.waiting("chat", "support"), { count: 1, oldestQueuedMs: T0 + 1000 });
  // Rejected: back in the queue, waiting from the rejection.
  b.apply(changed(4, T0 + 3000, "t1", TaskState.QUEUED, { agentId: "ana", requeueReason: RequeueReason.REJECTED }));
  assert.deepEqual(b.waiting("chat", "support"), { count: 2, oldestQueuedMs: T0 + 1000 });
  assert.equal(b.tasks.get("t1")!.queuedMs, T0 + 3000);
  assert.equal(b.tasks.get("t1")!.agent, "");
  // A widened search is no requeue: the wait goes on.
  b.apply(changed(5, T0 + 4000, "t2", TaskState.QUEUED));
  assert.equal(b.tasks.get("t2")!.queuedMs, T0 + 1000);
  b.apply(changed(6, T0 + 5000, "t2", TaskState.CLOSED));
  assert.deepEqual(b.waiting("chat", "support"), { count: 1, oldestQueuedMs: T0 + 3000 });
  assert.equal(b.tasks.has("t2"), false);
  assert.ok(b.queues.has(queueKey("chat", "support")));
});

test("the service level counts each task once, at its first acceptance, within the threshold from arrival", () => {
  const b = new Board(20_000);
  const sl = () => b.serviceLevels.get(queueKey("chat", "support"));
  b.apply(queued(1, T0, "fast"));
  b.apply(queued(2, T0, "slow"));
  b.apply(selected(3, T0 + 1000, "fast", "ana"));
  b.apply(changed(4, T0 + 20_000, "fast", TaskState.ACTIVE, { agentId: "ana" }));
  assert.deepEqual(sl(), { answered: 1, within: 1 });
  // Paused and resumed: no second answer.
  b.apply(changed(5, T0 + 21_000, "fast", TaskState.PAUSED, { agentId: "ana" }));
  b.apply(changed(6, T0 + 22_000, "fast", TaskState.ACTIVE, { agentId: "ana" }));
  // A participant leaving keeps the task's state.
  b.apply(event(7, T0 + 22_500, { case: "taskConferenced", value: { taskId: "fast", ownerAgentId: "ana", participantAgentId: "ben" } }));
  assert.deepEqual(b.tasks.get("fast")!.participants, ["ben"]);
  b.apply(changed(8, T0 + 23_000, "fast", TaskState.ACTIVE, { participantLeftAgentId: "ben" }));
  assert.deepEqual(b.tasks.get("fast")!.participants, []);
  assert.deepEqual(sl(), { answered: 1, within: 1 });
  // Requeued after an acceptance (its agent logged out), then accepted again: still once.
  b.apply(changed(9, T0 + 24_000, "fast", TaskState.QUEUED, { agentId: "ana", requeueReason: RequeueReason.AGENT_LOGOUT }));
  b.apply(selected(10, T0 + 25_000, "fast", "ben"));
  b.apply(changed(11, T0 + 26_000, "fast", TaskState.ACTIVE, { agentId: "ben" }));
  assert.deepEqual(sl(), { answered: 1, within: 1 });
  assert.equal(b.tasks.get("fast")!.agent, "ben");
  // 20.001 s after arriving: answered, but not within the threshold.
  b.apply(selected(12, T0 + 2000, "slow", "cy"));
  b.apply(changed(13, T0 + 20_001, "slow", TaskState.ACTIVE, { agentId: "cy" }));
  assert.deepEqual(sl(), { answered: 2, within: 1 });
});

test("events a listing already holds are skipped, per task and per agent", () => {
  const b = new Board(20_000);
  // The task list reflects revision 10: t1 already offered to ana, t2 closed at 9.
  b.listTasks(
    [
      task("t1", TaskState.OFFERED, T0, T0, { offeredAgentId: "ana" }),
      task("t2", TaskState.CLOSED, T0, T0),
    ],
    10n,
    T0 + 5000,
  );
  // The agent list reflects revision 8: ana still READY.
  b.listAgents(
    [create(AgentStatusSchema, { agentId: "ana", mrds: [{ mrd: "chat", state: AgentState.READY, availableSinceTime: timestampFromMs(T0 - 60_000) }] })],
    8n,
    T0 + 5000,
  );
  assert.equal(b.agentOn("ana", "chat")!.sinceExact, true);
  assert.equal(b.agentOn("ana", "chat")!.sinceMs, T0 - 60_000);
  // The watch starts at 8 + 1 and replays what the task list already has.
  assert.deepEqual(b.apply(queued(9, T0, "t2")), {});
  assert.equal(b.tasks.has("t2"), false, "a closed task does not come back from its replayed queueing");
  b.apply(agentState(9, T0 + 100, "ana", AgentState.RESERVED));
  b.apply(selected(9, T0 + 100, "t1", "ana"));
  assert.equal(b.agentOn("ana", "chat")!.state, AgentState.RESERVED, "revision 9 is news for ana");
  assert.equal(b.agentOn("ana", "chat")!.sinceMs, T0 + 100);
  // Past the listings: everything applies, and an unknown task is asked for.
  b.apply(changed(11, T0 + 6000, "t1", TaskState.ACTIVE, { agentId: "ana" }));
  assert.equal(b.tasks.get("t1")!.state, TaskState.ACTIVE);
  assert.deepEqual(b.serviceLevels.get(queueKey("chat", "support")), { answered: 1, within: 1 });
  assert.deepEqual(b.apply(selected(12, T0, "t9", "ben")), { unknownTaskId: "t9" });
  // An agent logging out leaves the MRD's list.
  b.apply(agentState(13, T0 + 7000, "ana", AgentState.LOGOUT));
  assert.equal(b.agentOn("ana", "chat"), undefined);
  assert.deepEqual(b.agentsOn("chat"), []);
});

test("time in state starts at the change, and stays across changes that keep the state", () => {
  const b = new Board(20_000);
  b.listAgents(
    [create(AgentStatusSchema, { agentId: "ben", mrds: [{ mrd: "chat", state: AgentState.NOT_READY, reasonCode: "lunch" }] })],
    1n,
    T0,
  );
  // NOT_READY carries no start time: counted from when the wallboard saw it, marked inexact.
  assert.deepEqual([b.agentOn("ben", "chat")!.sinceMs, b.agentOn("ben", "chat")!.sinceExact], [T0, false]);
  b.apply(agentState(2, T0 + 1000, "ben", AgentState.READY));
  b.apply(event(3, T0 + 2000, { case: "agentStateChanged", value: { agentId: "ben", mrd: "chat", state: AgentState.ACTIVE, activeTasks: 1 } }));
  b.apply(event(4, T0 + 3000, { case: "agentStateChanged", value: { agentId: "ben", mrd: "chat", state: AgentState.ACTIVE, activeTasks: 2 } }));
  const ben = b.agentOn("ben", "chat")!;
  assert.deepEqual([ben.state, ben.activeTasks, ben.sinceMs, ben.sinceExact], [AgentState.ACTIVE, 2, T0 + 2000, true]);
});
