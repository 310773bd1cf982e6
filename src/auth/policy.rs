//! Who may call what: one table keyed by the full gRPC method path, read by the edge layer for
//! every request and by the `Connect` stream for each multiplexed frame. A path that is not
//! listed is refused to everyone, so a new RPC stays closed until it gets a row here.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::domain::{Principal, Role};

/// What a method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// A signed-in principal with any one of these roles.
    Roles(&'static [Role]),
}

const ALL: &[Role] = &Role::ALL;
const A: &[Role] = &[Role::Agent];
const ASD: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];
const SD: &[Role] = &[Role::Supervisor, Role::Admin];
const ID: &[Role] = &[Role::Integration, Role::Admin];
const D: &[Role] = &[Role::Admin];

/// The reflection methods: public unless the layer is built to require a signed-in caller.
pub const REFLECTION_PATHS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Reflection when it requires a signed-in caller.
pub const REFLECTION_AUTHENTICATED: Access = Access::Roles(ALL);

/// Every method's row, keyed by its full path. One row a line, to be read as a table.
#[rustfmt::skip]
pub const POLICY: &[(&str, Access)] = &[
    // Probes, discovery and signing in.
    ("/grpc.health.v1.Health/Check", Access::Public),
    ("/grpc.health.v1.Health/Watch", Access::Public),
    (REFLECTION_PATHS[0], Access::Public),
    (REFLECTION_PATHS[1], Access::Public),
    ("/switchboard.v1.CoreService/GetServerStatus", Access::Public),
    ("/switchboard.v1.CoreService/ListServices", Access::Public),
    ("/switchboard.v1.AuthService/Login", Access::Public),
    ("/switchboard.v1.AuthService/Refresh", Access::Public),
    ("/switchboard.v1.AuthService/Logout", Access::Public),
    ("/switchboard.v1.AuthService/WhoAmI", Access::Roles(ALL)),
    // CoreService: clients and their bindings.
    ("/switchboard.v1.CoreService/RegisterClient", Access::Roles(ALL)),
    ("/switchboard.v1.CoreService/UnregisterClient", Access::Roles(ALL)),
    ("/switchboard.v1.CoreService/BindService", Access::Roles(ALL)),
    ("/switchboard.v1.CoreService/UnbindService", Access::Roles(ALL)),
    ("/switchboard.v1.CoreService/BindResource", Access::Roles(ALL)),
    ("/switchboard.v1.CoreService/UnbindResource", Access::Roles(ALL)),
    ("/switchboard.v1.CoreService/Connect", Access::Roles(ALL)),
    ("/switchboard.v1.CoreService/Feed", Access::Roles(ALL)),
    // ProcessorService.
    ("/switchboard.v1.ProcessorService/GetCapabilities", Access::Roles(ALL)),
    ("/switchboard.v1.ProcessorService/PrepareSession", Access::Roles(ASD)),
    ("/switchboard.v1.ProcessorService/EndSession", Access::Roles(ASD)),
    // WorkflowService.
    ("/switchboard.v1.WorkflowService/GetSessionState", Access::Roles(ASD)),
    ("/switchboard.v1.WorkflowService/WatchSessionState", Access::Roles(ASD)),
    ("/switchboard.v1.WorkflowService/InvokeAction", Access::Roles(ASD)),
    // RoutingService: an agent's own moves, oversight, and channel servers' tasks.
    ("/switchboard.v1.RoutingService/ConnectAgent", Access::Roles(A)),
    ("/switchboard.v1.RoutingService/LoginAgent", Access::Roles(A)),
    ("/switchboard.v1.RoutingService/AcceptTask", Access::Roles(A)),
    ("/switchboard.v1.RoutingService/RejectTask", Access::Roles(A)),
    ("/switchboard.v1.RoutingService/ChangeAgentState", Access::Roles(ASD)),
    ("/switchboard.v1.RoutingService/TransferTask", Access::Roles(ALL)),
    ("/switchboard.v1.RoutingService/ConferenceTask", Access::Roles(ALL)),
    ("/switchboard.v1.RoutingService/ChangeTaskState", Access::Roles(ALL)),
    ("/switchboard.v1.RoutingService/NewTask", Access::Roles(ID)),
    ("/switchboard.v1.RoutingService/GetAgentState", Access::Roles(ASD)),
    ("/switchboard.v1.RoutingService/GetTaskState", Access::Roles(ALL)),
    ("/switchboard.v1.RoutingService/ListAgentStates", Access::Roles(SD)),
    ("/switchboard.v1.RoutingService/ListTasks", Access::Roles(SD)),
    ("/switchboard.v1.RoutingService/GetQueueStats", Access::Roles(ALL)),
    ("/switchboard.v1.RoutingService/WatchRoutingEvents", Access::Roles(ALL)),
    ("/switchboard.v1.RoutingService/RequeueTask", Access::Roles(SD)),
    ("/switchboard.v1.RoutingService/SetAgentNextState", Access::Roles(SD)),
    // AdminService: reads for oversight, writes for admins.
    ("/switchboard.v1.AdminService/GetAgent", Access::Roles(ASD)),
    ("/switchboard.v1.AdminService/ListAgents", Access::Roles(SD)),
    ("/switchboard.v1.AdminService/ListMrds", Access::Roles(SD)),
    ("/switchboard.v1.AdminService/ListQueues", Access::Roles(ASD)),
    ("/switchboard.v1.AdminService/ListReasonCodes", Access::Roles(ASD)),
    ("/switchboard.v1.AdminService/UpsertAgent", Access::Roles(D)),
    ("/switchboard.v1.AdminService/DeleteAgent", Access::Roles(D)),
    ("/switchboard.v1.AdminService/UpsertMrd", Access::Roles(D)),
    ("/switchboard.v1.AdminService/DeleteMrd", Access::Roles(D)),
    ("/switchboard.v1.AdminService/UpsertQueue", Access::Roles(D)),
    ("/switchboard.v1.AdminService/DeleteQueue", Access::Roles(D)),
    ("/switchboard.v1.AdminService/UpsertReasonCode", Access::Roles(D)),
    ("/switchboard.v1.AdminService/UpsertAccount", Access::Roles(D)),
    ("/switchboard.v1.AdminService/GetAccount", Access::Roles(D)),
    ("/switchboard.v1.AdminService/ListAccounts", Access::Roles(D)),
    ("/switchboard.v1.AdminService/DeleteAccount", Access::Roles(D)),
    ("/switchboard.v1.AdminService/RevokeCredentials", Access::Roles(D)),
];

/// The row for `path`; `None` when it is not listed, which means nobody may call it.
pub fn access(path: &str) -> Option<&'static Access> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Access>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            POLICY
                .iter()
                .map(|(path, access)| (*path, access))
                .collect()
        })
        .get(path)
        .copied()
}

/// The row for `path` as the edge applies it, reflection closed when `reflection_requires_auth`.
pub fn effective_access(path: &str, reflection_requires_auth: bool) -> Option<&'static Access> {
    if reflection_requires_auth && REFLECTION_PATHS.contains(&path) {
        return Some(&REFLECTION_AUTHENTICATED);
    }
    access(path)
}

/// Whether `principal` meets `access`.
pub fn allows(access: &Access, principal: &Principal) -> bool {
    match access {
        Access::Public => true,
        Access::Roles(roles) => roles.iter().any(|role| principal.has(*role)),
    }
}

/// Why a caller without the roles `access` asks for is refused `path`.
pub fn denied_message(path: &str, access: &Access) -> String {
    match access {
        Access::Public => format!("{path} is open to every caller"),
        Access::Roles(roles) => {
            let names: Vec<&str> = roles.iter().map(|role| role.wire_name()).collect();
            format!("{path} needs one of the roles {}", names.join(", "))
        }
    }
}

/// Why nobody may call a path the table does not list.
pub fn unlisted_message(path: &str) -> String {
    format!("{path} is not allowed for anyone")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn well_formed(path: &str) -> bool {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return false;
        };
        let Some((package, name)) = service.rsplit_once('.') else {
            return false;
        };
        let ident = |s: &str| {
            s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        package.split('.').all(ident)
            && ident(name)
            && ident(method)
            && method.starts_with(|c: char| c.is_ascii_uppercase())
    }

    #[test]
    fn every_row_is_a_well_formed_method_path() {
        for (path, _) in POLICY {
            assert!(well_formed(path), "{path}");
        }
        assert!(!well_formed("/switchboard.v1.CoreService"));
        assert!(!well_formed("switchboard.v1.CoreService/Connect"));
        assert!(!well_formed("/CoreService/Connect"));
        assert!(!well_formed("/switchboard.v1.CoreService/Connect/x"));
    }

    #[test]
    fn no_path_is_listed_twice() {
        let mut seen = HashSet::new();
        for (path, _) in POLICY {
            assert!(seen.insert(*path), "{path} is listed twice");
        }
    }

    #[test]
    fn no_row_asks_for_an_empty_set_of_roles() {
        for (path, access) in POLICY {
            assert_ne!(*access, Access::Roles(&[]), "{path}");
        }
    }

    #[test]
    fn lookups_follow_the_table() {
        assert_eq!(
            access("/switchboard.v1.CoreService/GetServerStatus"),
            Some(&Access::Public)
        );
        assert_eq!(
            access("/switchboard.v1.RoutingService/NewTask"),
            Some(&Access::Roles(&[Role::Integration, Role::Admin]))
        );
        assert_eq!(access("/switchboard.v1.CoreService/Nope"), None);
        assert_eq!(access(""), None);
    }

    #[test]
    fn reflection_closes_only_when_asked() {
        for path in REFLECTION_PATHS {
            assert_eq!(effective_access(path, false), Some(&Access::Public));
            assert_eq!(
                effective_access(path, true),
                Some(&Access::Roles(&Role::ALL))
            );
        }
        assert_eq!(
            effective_access("/grpc.health.v1.Health/Check", true),
            Some(&Access::Public)
        );
    }

    fn with_roles(roles: &[Role]) -> Principal {
        Principal {
            actor: crate::domain::Actor::Account("someone".to_owned()),
            roles: roles.iter().copied().collect(),
        }
    }

    #[test]
    fn roles_allow_any_one_of_them() {
        let admin_only = Access::Roles(&[Role::Admin]);
        assert!(allows(&admin_only, &with_roles(&[Role::Admin])));
        assert!(!allows(&admin_only, &with_roles(&[Role::Supervisor])));
        assert!(allows(&Access::Public, &with_roles(&[])));
        assert!(!allows(&Access::Roles(SD), &with_roles(&[])));
        assert!(allows(
            &Access::Roles(SD),
            &with_roles(&[Role::Agent, Role::Supervisor])
        ));
    }

    #[test]
    fn denial_names_the_roles_needed() {
        let path = "/switchboard.v1.AdminService/UpsertAgent";
        let access = access(path).copied().unwrap_or(Access::Public);
        assert_eq!(
            denied_message(path, &access),
            "/switchboard.v1.AdminService/UpsertAgent needs one of the roles ROLE_ADMIN"
        );
        assert_eq!(
            denied_message("/x.Y/Z", &Access::Roles(SD)),
            "/x.Y/Z needs one of the roles ROLE_SUPERVISOR, ROLE_ADMIN"
        );
    }
}
