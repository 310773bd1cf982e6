//! Settling: what routing does by itself after every command. Due timers fire (offers expire,
//! steps widen, tasks outlive their queue's time to live, wrap-up ends), every waiting task an
//! eligible agent can take is offered (immediate backfill), and every agent whose derived state
//! changed is announced.

use super::config::RonaAction;
use super::disposition::TaskDisposition;
use super::model::{
    AgentState, CloseReason, REQUEUE_PRIORITY, RequeueReason, Selection, Task, TaskState,
};
use super::{RONA_REASON, Routing, Sink, TimerKind, load};
use crate::domain::events::{Event, Millis};

impl Routing {
    /// Puts a task back in its queue, ahead of all, away from the agent it was offered to or
    /// held by.
    pub(super) fn requeue(
        &mut self,
        task_id: &str,
        agent_id: &str,
        reason: RequeueReason,
        now: Millis,
        sink: &mut Sink,
    ) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        let step_deadline = self
            .queues
            .get(&task.spec.queue_key())
            .and_then(|q| q.step_deadline(task.step, now));
        let seq = self.next_seq;
        let mrd = task.spec.mrd.clone();
        self.emit(
            Event::TaskRequeued {
                task_id: task_id.to_owned(),
                mrd,
                agent_id: agent_id.to_owned(),
                reason,
                priority: REQUEUE_PRIORITY,
                seq,
                at: now,
                step_deadline,
                moved_to: None,
            },
            sink,
        );
        if reason.is_attempt() {
            self.enforce_attempts(task_id, now, sink);
        }
    }

    /// Closes a task, for `reason`, as the engine does on its own.
    pub(super) fn close(
        &mut self,
        task_id: &str,
        reason: CloseReason,
        detail: String,
        now: Millis,
        sink: &mut Sink,
    ) {
        let disposition = self.disposition_by_engine(task_id);
        self.close_with(task_id, reason, detail, disposition, now, sink);
    }

    /// Closes a task, for `reason`, with its disposition.
    pub(super) fn close_with(
        &mut self,
        task_id: &str,
        reason: CloseReason,
        detail: String,
        disposition: TaskDisposition,
        now: Millis,
        sink: &mut Sink,
    ) {
        let (mrd, agents) = self
            .tasks
            .get(task_id)
            .map(|t| (t.spec.mrd.clone(), t.agents().cloned().collect()))
            .unwrap_or_default();
        self.emit(
            Event::TaskStateChanged {
                task_id: task_id.to_owned(),
                mrd,
                state: TaskState::Closed,
                close_reason: Some(reason),
                wrap_deadline: None,
                detail,
                at: now,
                agents,
                disposition,
            },
            sink,
        );
    }

    /// Runs after every command: due timers, then every possible offer, then state notices.
    pub fn settle(&mut self, now: Millis, sink: &mut Sink) {
        self.fire_due(now, sink);
        self.dispatch(now, sink);
        self.log_out_when_free(now, sink);
        self.announce_positions(now, sink);
        self.announce(sink);
    }

    fn fire_due(&mut self, now: Millis, sink: &mut Sink) {
        while let Some((at, kind, task_id)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, kind, task_id.clone()));
            let Some(task) = self.tasks.get(&task_id) else {
                continue;
            };
            match (kind, task.state) {
                (TimerKind::OfferExpires, TaskState::Offered) => {
                    let Some((agent_id, _)) = task.offer.clone() else {
                        continue;
                    };
                    let mrd = task.spec.mrd.clone();
                    self.requeue(&task_id, &agent_id, RequeueReason::Rona, now, sink);
                    self.penalise_rona(&agent_id, &mrd, now, sink);
                }
                (TimerKind::OfferExpires, TaskState::Active | TaskState::Paused) => {
                    if let Some((agent_id, _)) = task.offer.clone() {
                        self.let_offer_go(&task_id, &agent_id, RequeueReason::Rona, now, sink);
                    }
                }
                (TimerKind::PreferenceEnds, TaskState::Queued | TaskState::Offered) => {
                    let mrd = task.spec.mrd.clone();
                    self.emit(
                        Event::TaskPreferenceEnded {
                            task_id,
                            mrd,
                            at: now,
                        },
                        sink,
                    );
                }
                (TimerKind::StepWidens, TaskState::Queued) => {
                    let step = task.step + 1;
                    let step_deadline = self
                        .queues
                        .get(&task.spec.queue_key())
                        .and_then(|q| q.step_deadline(step, now));
                    let mrd = task.spec.mrd.clone();
                    self.emit(
                        Event::TaskStepWidened {
                            task_id,
                            mrd,
                            step,
                            step_deadline,
                            at: now,
                        },
                        sink,
                    );
                }
                (TimerKind::TimeToLive, TaskState::Queued) => {
                    let detail = self.tried_steps(task);
                    self.close(&task_id, CloseReason::NoAgentAvailable, detail, now, sink);
                }
                (TimerKind::WrapUpEnds, TaskState::WrappingUp) => {
                    self.close(&task_id, CloseReason::Done, String::new(), now, sink);
                }
                _ => {}
            }
        }
    }

    fn penalise_rona(&mut self, agent_id: &str, mrd: &str, now: Millis, sink: &mut Sink) {
        let action = self
            .mrds
            .get(mrd)
            .map_or(RonaAction::NotReady, |m| m.rona_action);
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        // An agent who asked for NOT_READY while the offer rang is NOT_READY already, for the
        // reason it gave: that stands.
        let still_ready = agent.mrds.get(mrd).is_some_and(|am| am.ready);
        match action {
            RonaAction::NotReady if still_ready => self.emit(
                Event::AgentNotReady {
                    agent_id: agent_id.to_owned(),
                    mrd: mrd.to_owned(),
                    reason_code: RONA_REASON.into(),
                    at: now,
                },
                sink,
            ),
            RonaAction::NotRoutable if agent.routable => self.emit(
                Event::AgentRoutable {
                    agent_id: agent_id.to_owned(),
                    routable: false,
                },
                sink,
            ),
            _ => {}
        }
    }

    /// What a task that found nobody searched, for its close.
    fn tried_steps(&self, task: &Task) -> String {
        let Some(queue) = self.queues.get(&task.spec.queue_key()) else {
            return String::new();
        };
        let tried: Vec<String> = queue
            .steps
            .iter()
            .take(task.step + 1)
            .enumerate()
            .map(|(i, s)| format!("step {i}: {}", s.expression.source()))
            .collect();
        format!(
            "no eligible agent in queue '{}/{}'; tried {}",
            task.spec.mrd,
            task.spec.queue,
            tried.join("; ")
        )
    }

    /// Immediate backfill: offers until no waiting task has an eligible agent.
    fn dispatch(&mut self, now: Millis, sink: &mut Sink) {
        loop {
            if let Some(key) = self.dirty_tasks.pop_first() {
                let Some(task) = self.tasks.get(&key.task_id) else {
                    continue;
                };
                if task.state != TaskState::Queued {
                    continue;
                }
                if let Some((agent, selection)) = self.best_agent_for(task) {
                    self.offer(&key.task_id, &agent.agent_id, selection, now, sink);
                }
                continue;
            }
            if let Some((agent_id, mrd)) = self.dirty_agents.pop_first() {
                if self.eligible(&agent_id, &mrd).is_none() {
                    continue;
                }
                if let Some((task, selection)) = self.best_task_for(&agent_id, &mrd) {
                    self.offer(&task.task_id, &agent_id, selection, now, sink);
                }
                continue;
            }
            break;
        }
    }

    fn offer(
        &mut self,
        task_id: &str,
        agent_id: &str,
        selection: Selection,
        now: Millis,
        sink: &mut Sink,
    ) {
        let task = &self.tasks[task_id];
        let mrd = task.spec.mrd.clone();
        let offer_timeout = self.mrds.get(&mrd).map_or(0, |m| m.offer_timeout_ms);
        let agent_load = self.agents[agent_id].mrds.get(&mrd).map_or(0, load);
        self.emit(
            Event::TaskAgentSelected {
                task_id: task_id.to_owned(),
                agent_id: agent_id.to_owned(),
                queue: task.spec.queue.clone(),
                mrd,
                offer_deadline: now.saturating_add(offer_timeout),
                selection,
                agent_load,
                at: now,
            },
            sink,
        );
    }

    /// Emits a notice for each agent whose derived state changed.
    fn announce(&mut self, sink: &mut Sink) {
        let touched = std::mem::take(&mut self.touched);
        for (agent_id, mrd) in touched {
            let state = self.agent_state(&agent_id, &mrd);
            let (reason_code, routable, active) = match self.agents.get(&agent_id) {
                Some(agent) => (
                    agent
                        .mrds
                        .get(&mrd)
                        .map(|am| am.reason_code.clone())
                        .unwrap_or_default(),
                    agent.routable,
                    agent.mrds.get(&mrd).map_or(0, load),
                ),
                None => (String::new(), false, 0),
            };
            let now = (state, reason_code, routable, active);
            let key = (agent_id, mrd);
            let before = self.announced.get(&key);
            let unchanged = match before {
                Some(b) => *b == now,
                None => state == AgentState::Logout,
            };
            if !unchanged {
                let (agent_id, mrd) = key;
                self.emit(
                    Event::AgentStateChanged {
                        agent_id,
                        mrd,
                        state: now.0,
                        reason_code: now.1,
                        routable: now.2,
                        active_tasks: now.3,
                    },
                    sink,
                );
            }
        }
        // Announcing changes nothing an agent could see, so this set stays empty.
        self.touched.clear();
    }
}
