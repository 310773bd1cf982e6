//! The glue between a desktop's session and its agent's routing: the routing actions a session
//! shows beside its model's, invoking them, re-announcing a session when they change, and the
//! capabilities a processor reports.

use std::collections::{BTreeMap, BTreeSet};

use super::commands::Turn;
use super::error::{DomainError, DomainResult};
use super::events::Event;
use super::routing::model::RequestedAgentState;
use super::state::{Decided, State};

pub use super::routing::DesktopAction;

/// What a desktop can do with a task, as `GetCapabilities` reports it.
const CHANNEL_ACTIONS: [&str; 8] = [
    "accept",
    "reject",
    "pause",
    "resume",
    "wrap-up",
    "close",
    "transfer",
    "conference",
];

impl State {
    /// A desktop's routing action, on its session's agent. Refused unless enabled now.
    pub(super) fn invoke_desktop_action(
        &mut self,
        resource_id: &str,
        action: DesktopAction,
        turn: &mut Turn,
    ) -> DomainResult<()> {
        let view = self.session_view(resource_id)?;
        let agent_id = self.sessions[resource_id].agent_id.clone();
        let enabled = view
            .actions
            .iter()
            .any(|(name, on)| name == action.name() && *on);
        if !enabled {
            return Err(DomainError::FailedPrecondition(format!(
                "action '{}' is not enabled for agent '{agent_id}' now",
                action.name()
            )));
        }
        let (r, now, sink) = (&mut self.routing, turn.now, &mut turn.sink);
        match action {
            DesktopAction::Ready => {
                r.change_agent_state(&agent_id, RequestedAgentState::Ready, "", "", now, sink)
            }
            DesktopAction::NotReady => {
                r.change_agent_state(&agent_id, RequestedAgentState::NotReady, "", "", now, sink)
            }
            DesktopAction::Accept | DesktopAction::Reject => {
                let task_id = r.pending_offer(&agent_id).unwrap_or_default();
                if action == DesktopAction::Accept {
                    r.accept_task(&task_id, &agent_id, now, sink)
                } else {
                    r.reject_task(&task_id, &agent_id, now, sink)
                }
            }
        }
    }

    /// After routing moved: a `state.updated` for each session whose agent's routing actions
    /// changed.
    pub(super) fn follow_routing(&mut self, routing_events: &[Event], decided: &mut Vec<Decided>) {
        let agents: BTreeSet<&str> = routing_events
            .iter()
            .filter_map(|e| match e {
                Event::AgentStateChanged { agent_id, .. } => Some(agent_id.as_str()),
                _ => None,
            })
            .collect();
        for agent_id in agents {
            let resource_id = self.directory.session_resource_id(agent_id);
            let Ok(view) = self.session_view(&resource_id) else {
                continue;
            };
            if self.sessions[&resource_id].shown == view.actions {
                continue;
            }
            let event = Event::SessionStateUpdated {
                resource_id,
                view_state: view.view_state,
                actions: view.actions,
            };
            let audience = self.audience(&event);
            self.apply(&event);
            decided.push(Decided { event, audience });
        }
    }

    /// What this processor supports, in the six keys desktops read: single task channels on
    /// each configured MRD, with the task actions routing offers; no channel groups.
    pub(super) fn capabilities(&self) -> BTreeMap<String, String> {
        let mrds: Vec<&str> = self.routing.mrds().map(|m| m.name.as_str()).collect();
        let single = if mrds.is_empty() { "false" } else { "true" };
        [
            ("channel-groups-max-per-agent", "0".to_owned()),
            ("channel-groups-media-types", String::new()),
            ("channel-groups-supported", "false".to_owned()),
            ("channel-actions", CHANNEL_ACTIONS.join(",")),
            ("single-channels-media-types", mrds.join(",")),
            ("single-channels-supported", single.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
