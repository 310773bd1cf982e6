//! Which node may serve what: one table keyed by the full gRPC method path, beside the policy
//! table (`auth::policy::POLICY`) and with exactly its paths. Reads and watches are served by
//! any node from its own state; everything that changes state goes to the leader, which owns
//! the journal. A path the table does not know goes to the leader too: the safe side.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::auth::policy::REFLECTION_PATHS;

/// Where a method is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// By any node, from its own state: probes, discovery, reads and watches.
    Anywhere,
    /// By the leader only: it changes state (sign-ins included), or, for `Connect`, the
    /// leader owns what it carries (presence and offers).
    Leader,
}

use Placement::{Anywhere, Leader};

/// Every method's row, keyed by its full path. One row a line, to be read as a table.
#[rustfmt::skip]
pub const PLACEMENT: &[(&str, Placement)] = &[
    // Probes, discovery and signing in (Login, Refresh and Logout write sign-ins).
    ("/grpc.health.v1.Health/Check", Anywhere),
    ("/grpc.health.v1.Health/Watch", Anywhere),
    (REFLECTION_PATHS[0], Anywhere),
    (REFLECTION_PATHS[1], Anywhere),
    ("/switchboard.v1.CoreService/GetServerStatus", Anywhere),
    ("/switchboard.v1.CoreService/ListServices", Anywhere),
    ("/switchboard.v1.AuthService/Login", Leader),
    ("/switchboard.v1.AuthService/Refresh", Leader),
    ("/switchboard.v1.AuthService/Logout", Leader),
    ("/switchboard.v1.AuthService/WhoAmI", Anywhere),
    // CoreService: clients and their bindings; the desktop stream is forwarded whole.
    ("/switchboard.v1.CoreService/RegisterClient", Leader),
    ("/switchboard.v1.CoreService/UnregisterClient", Leader),
    ("/switchboard.v1.CoreService/BindService", Leader),
    ("/switchboard.v1.CoreService/UnbindService", Leader),
    ("/switchboard.v1.CoreService/BindResource", Leader),
    ("/switchboard.v1.CoreService/UnbindResource", Leader),
    ("/switchboard.v1.CoreService/Connect", Leader),
    ("/switchboard.v1.CoreService/Feed", Leader),
    // ProcessorService.
    ("/switchboard.v1.ProcessorService/GetCapabilities", Anywhere),
    ("/switchboard.v1.ProcessorService/PrepareSession", Leader),
    ("/switchboard.v1.ProcessorService/EndSession", Leader),
    // WorkflowService.
    ("/switchboard.v1.WorkflowService/GetSessionState", Anywhere),
    ("/switchboard.v1.WorkflowService/WatchSessionState", Anywhere),
    ("/switchboard.v1.WorkflowService/InvokeAction", Leader),
    // RoutingService.
    ("/switchboard.v1.RoutingService/ConnectAgent", Leader),
    ("/switchboard.v1.RoutingService/LoginAgent", Leader),
    ("/switchboard.v1.RoutingService/AcceptTask", Leader),
    ("/switchboard.v1.RoutingService/RejectTask", Leader),
    ("/switchboard.v1.RoutingService/ChangeAgentState", Leader),
    ("/switchboard.v1.RoutingService/TransferTask", Leader),
    ("/switchboard.v1.RoutingService/ConferenceTask", Leader),
    ("/switchboard.v1.RoutingService/ChangeTaskState", Leader),
    ("/switchboard.v1.RoutingService/NewTask", Leader),
    ("/switchboard.v1.RoutingService/GetAgentState", Anywhere),
    ("/switchboard.v1.RoutingService/GetTaskState", Anywhere),
    ("/switchboard.v1.RoutingService/ListAgentStates", Anywhere),
    ("/switchboard.v1.RoutingService/ListTasks", Anywhere),
    ("/switchboard.v1.RoutingService/GetQueueStats", Anywhere),
    ("/switchboard.v1.RoutingService/WatchRoutingEvents", Anywhere),
    ("/switchboard.v1.RoutingService/RequeueTask", Leader),
    ("/switchboard.v1.RoutingService/SetAgentNextState", Leader),
    // AdminService: reads anywhere, writes on the leader.
    ("/switchboard.v1.AdminService/GetAgent", Anywhere),
    ("/switchboard.v1.AdminService/ListAgents", Anywhere),
    ("/switchboard.v1.AdminService/ListMrds", Anywhere),
    ("/switchboard.v1.AdminService/ListQueues", Anywhere),
    ("/switchboard.v1.AdminService/ListReasonCodes", Anywhere),
    ("/switchboard.v1.AdminService/UpsertAgent", Leader),
    ("/switchboard.v1.AdminService/DeleteAgent", Leader),
    ("/switchboard.v1.AdminService/UpsertMrd", Leader),
    ("/switchboard.v1.AdminService/DeleteMrd", Leader),
    ("/switchboard.v1.AdminService/UpsertQueue", Leader),
    ("/switchboard.v1.AdminService/DeleteQueue", Leader),
    ("/switchboard.v1.AdminService/UpsertReasonCode", Leader),
    ("/switchboard.v1.AdminService/UpsertAccount", Leader),
    ("/switchboard.v1.AdminService/GetAccount", Anywhere),
    ("/switchboard.v1.AdminService/ListAccounts", Anywhere),
    ("/switchboard.v1.AdminService/DeleteAccount", Leader),
    ("/switchboard.v1.AdminService/RevokeCredentials", Leader),
];

/// Where `path` is served; `Leader` for a path the table does not list.
pub fn placement(path: &str) -> Placement {
    static INDEX: OnceLock<HashMap<&'static str, Placement>> = OnceLock::new();
    INDEX
        .get_or_init(|| PLACEMENT.iter().copied().collect())
        .get(path)
        .copied()
        .unwrap_or(Leader)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::auth::policy::POLICY;

    #[test]
    fn every_policy_path_has_a_row_and_no_row_is_extra() {
        let placed: HashSet<&str> = PLACEMENT.iter().map(|(path, _)| *path).collect();
        let policed: HashSet<&str> = POLICY.iter().map(|(path, _)| *path).collect();
        let unplaced: Vec<_> = policed.difference(&placed).collect();
        let unknown: Vec<_> = placed.difference(&policed).collect();
        assert!(unplaced.is_empty(), "no placement row: {unplaced:?}");
        assert!(unknown.is_empty(), "not in the policy table: {unknown:?}");
        assert_eq!(PLACEMENT.len(), placed.len(), "a path is placed twice");
    }

    #[test]
    fn watches_are_served_anywhere_and_the_desktop_stream_on_the_leader() {
        for (path, placement) in PLACEMENT {
            let method = path.rsplit('/').next().unwrap_or_default();
            if method.starts_with("Watch") {
                assert_eq!(*placement, Anywhere, "{path}");
            }
        }
        assert_eq!(placement("/switchboard.v1.CoreService/Connect"), Leader);
    }

    #[test]
    fn changes_and_sign_ins_go_to_the_leader() {
        for path in [
            "/switchboard.v1.AuthService/Login",
            "/switchboard.v1.AuthService/Refresh",
            "/switchboard.v1.AuthService/Logout",
            "/switchboard.v1.AdminService/UpsertAgent",
            "/switchboard.v1.RoutingService/NewTask",
            "/switchboard.v1.WorkflowService/InvokeAction",
        ] {
            assert_eq!(placement(path), Leader, "{path}");
        }
        for path in [
            "/grpc.health.v1.Health/Check",
            "/switchboard.v1.CoreService/GetServerStatus",
            "/switchboard.v1.AuthService/WhoAmI",
            "/switchboard.v1.AdminService/GetAgent",
        ] {
            assert_eq!(placement(path), Anywhere, "{path}");
        }
    }

    #[test]
    fn an_unknown_path_goes_to_the_leader() {
        assert_eq!(placement("/switchboard.v1.CoreService/Nope"), Leader);
        assert_eq!(placement(""), Leader);
        assert_eq!(placement("/"), Leader);
    }
}
