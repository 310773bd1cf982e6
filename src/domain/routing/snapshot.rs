//! Routing's part of a snapshot: its records only. `restore` rebuilds the pools, the waiting
//! index and the timers from them, as replaying the events would have.

use serde::{Deserialize, Serialize};

use super::Routing;
use super::config::{MrdConfig, QueueConfig, ReasonCode};
use super::index::QueueKey;
use super::model::{AgentState, RoutingAgent, Task, TaskState};
use super::service_level::ServiceWindow;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutingSnapshot {
    mrds: Vec<MrdConfig>,
    queues: Vec<QueueConfig>,
    reason_codes: Vec<ReasonCode>,
    agents: Vec<(String, RoutingAgent)>,
    tasks: Vec<Task>,
    next_seq: u64,
    announced: Vec<Announced>,
    /// Per queue (MRD, name), its service level counts.
    #[serde(default)]
    service_windows: Vec<(String, String, ServiceWindow)>,
}

/// The last derived state announced for an agent on an MRD.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Announced {
    agent_id: String,
    mrd: String,
    state: AgentState,
    reason_code: String,
    routable: bool,
    active_tasks: u32,
}

impl Routing {
    pub fn snapshot(&self) -> RoutingSnapshot {
        let mut announced: Vec<Announced> = self
            .announced
            .iter()
            .map(
                |((agent_id, mrd), (state, reason_code, routable, active_tasks))| Announced {
                    agent_id: agent_id.clone(),
                    mrd: mrd.clone(),
                    state: *state,
                    reason_code: reason_code.clone(),
                    routable: *routable,
                    active_tasks: *active_tasks,
                },
            )
            .collect();
        announced.sort_by(|a, b| (&a.agent_id, &a.mrd).cmp(&(&b.agent_id, &b.mrd)));
        let mut agents: Vec<(String, RoutingAgent)> = self
            .agents
            .iter()
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        RoutingSnapshot {
            mrds: self.mrds.values().cloned().collect(),
            queues: self.queues.values().cloned().collect(),
            reason_codes: self.reason_codes.values().cloned().collect(),
            agents,
            tasks: self.tasks.values().cloned().collect(),
            next_seq: self.next_seq,
            announced,
            service_windows: self.service_windows_snapshot(),
        }
    }

    pub fn restore(snapshot: RoutingSnapshot) -> Self {
        let mut routing = Routing {
            mrds: snapshot
                .mrds
                .into_iter()
                .map(|m| (m.name.clone(), m))
                .collect(),
            queues: snapshot.queues.into_iter().map(|q| (q.key(), q)).collect(),
            reason_codes: snapshot
                .reason_codes
                .into_iter()
                .map(|r| (r.code.clone(), r))
                .collect(),
            next_seq: snapshot.next_seq,
            service_windows: snapshot
                .service_windows
                .into_iter()
                .map(|(mrd, name, window)| (QueueKey::new(&mrd, &name), window))
                .collect(),
            ..Routing::default()
        };
        for (agent_id, agent) in snapshot.agents {
            for mrd in agent.mrds.keys() {
                routing
                    .mrd_agents
                    .entry(mrd.clone())
                    .or_default()
                    .insert(agent_id.clone());
            }
            routing.agent_ids.insert(agent_id.clone());
            routing.agents.insert(agent_id, agent);
        }
        for task in snapshot.tasks {
            if task.state == TaskState::Closed {
                routing.note_closed(&task.spec.task_id, task.updated_at);
            }
            routing.tasks.insert(task.spec.task_id.clone(), task);
        }
        for a in snapshot.announced {
            routing.announced.insert(
                (a.agent_id, a.mrd),
                (a.state, a.reason_code, a.routable, a.active_tasks),
            );
        }
        let agent_ids: Vec<String> = routing.agent_ids.iter().cloned().collect();
        for agent_id in &agent_ids {
            routing.reindex_agent(agent_id);
        }
        let task_ids: Vec<String> = routing.tasks.keys().cloned().collect();
        for task_id in &task_ids {
            routing.place_waiting(task_id);
        }
        routing.finish_replay();
        routing
    }
}
