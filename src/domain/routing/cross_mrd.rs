//! Cross-MRD rules: whether work an agent holds on one MRD keeps it from being offered work on
//! another.
//!
//! - `interruptible` (Cisco's meaning): an agent working a task of a non-interruptible MRD is
//!   offered nothing on any other MRD until it holds no task there (wrap-up included); work of
//!   an interruptible MRD lets other MRDs offer.
//! - `blocks`: an MRD names the MRDs its work keeps closed, whatever `interruptible` says:
//!   voice with `blocks: ["chat"]` means an agent with a voice task, or a voice offer ringing,
//!   is offered no chat.
//!
//! The rule is part of eligibility (`Routing::eligible`), so a blocked agent is simply not in
//! the pools of the blocked MRD: the choice stays a pool lookup. Every event that gives an agent
//! a task or takes one away re-derives its pools on all its MRDs (`touch_agent`), so when the
//! blocking task ends the agent is back in its pools and marked for backfill in that command.

use super::Routing;
use super::model::RoutingAgent;

impl Routing {
    /// The MRD whose work keeps the agent from being offered work on `mrd`, if any. Looks only
    /// at the agent's own MRDs (a handful), never at other agents or tasks.
    pub fn blocking_mrd(&self, agent_id: &str, mrd: &str) -> Option<&str> {
        self.agents
            .get(agent_id)
            .and_then(|agent| self.blocking_mrd_of(agent, mrd))
    }

    fn blocking_mrd_of<'a>(&'a self, agent: &'a RoutingAgent, mrd: &str) -> Option<&'a str> {
        let offered_on = agent
            .offer
            .as_ref()
            .and_then(|t| self.tasks.get(t))
            .map(|t| t.spec.mrd.as_str());
        agent.mrds.iter().find_map(|(other, am)| {
            if other == mrd {
                return None;
            }
            let config = self.mrds.get(other)?;
            let holds_task = !am.tasks.is_empty();
            let offered = offered_on == Some(other.as_str());
            let blocks_named = config.blocks.iter().any(|b| b == mrd);
            let blocked =
                (holds_task && !config.interruptible) || ((holds_task || offered) && blocks_named);
            blocked.then_some(other.as_str())
        })
    }

    /// Whether the agent may be offered work on `mrd` as far as its other MRDs go.
    pub(super) fn open_on(&self, agent: &RoutingAgent, mrd: &str) -> bool {
        self.blocking_mrd_of(agent, mrd).is_none()
    }
}
