//! Routing configuration written over gRPC, shared by the tests that need an MRD, a queue,
//! reason codes and agents before they start.
//!
//! ```ignore
//! RoutingSetup::chat()
//!     .queue("sales", "sales >= 1")
//!     .agents(&["ana", "ben"], PASSWORD)
//!     .attribute("sales", 5)
//!     .apply(&mut clients)
//!     .await;
//! ```

use std::collections::BTreeMap;

use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;

use super::{Clients, Who, sign_in, signed};

/// What to write, in this order: the MRD, the queue, the reason codes, then each agent (and
/// its login, when asked for).
pub struct RoutingSetup {
    mrd: pb::Mrd,
    queue: Option<(String, String)>,
    reason_codes: Vec<pb::ReasonCode>,
    agents: Vec<String>,
    password: String,
    attributes: BTreeMap<String, u32>,
    display_name: fn(&str) -> String,
    /// A connection to sign each agent in on, to log it in for routing as itself.
    login: Option<tonic::transport::Channel>,
    request_ids: Option<String>,
}

impl RoutingSetup {
    /// MRD `chat`: at most 2 tasks, offers wait 30 s, no wrap-up timeout, NOT_READY on RONA,
    /// tasks closed on logout. No queue, no reason code, no agent.
    pub fn chat() -> Self {
        Self {
            mrd: pb::Mrd {
                name: "chat".into(),
                max_tasks: 2,
                interruptible: false,
                offer_timeout_seconds: 30,
                wrap_up_timeout_seconds: 0,
                rona_action: pb::RonaAction::NotReady.into(),
                logout_action: pb::LogoutAction::Close.into(),
                blocks: Vec::new(),
                ..Default::default()
            },
            queue: None,
            reason_codes: Vec::new(),
            agents: Vec::new(),
            password: String::new(),
            attributes: BTreeMap::new(),
            display_name: |agent| format!("Agent {agent}"),
            login: None,
            request_ids: None,
        }
    }

    pub fn max_tasks(mut self, max_tasks: u32) -> Self {
        self.mrd.max_tasks = max_tasks;
        self
    }

    pub fn offer_timeout(mut self, seconds: u32) -> Self {
        self.mrd.offer_timeout_seconds = seconds;
        self
    }

    pub fn wrap_up_timeout(mut self, seconds: u32) -> Self {
        self.mrd.wrap_up_timeout_seconds = seconds;
        self
    }

    pub fn logout_action(mut self, action: pb::LogoutAction) -> Self {
        self.mrd.logout_action = action.into();
        self
    }

    /// A queue on the MRD with one step selecting on `expression`, no timeouts.
    pub fn queue(mut self, name: &str, expression: &str) -> Self {
        self.queue = Some((name.into(), expression.into()));
        self
    }

    pub fn reason_code(mut self, code: &str, label: &str, category: pb::ReasonCategory) -> Self {
        self.reason_codes.push(pb::ReasonCode {
            code: code.into(),
            label: label.into(),
            category: category.into(),
        });
        self
    }

    /// Agents with these ids, all with `password`.
    pub fn agents(mut self, ids: &[&str], password: &str) -> Self {
        self.agents.extend(ids.iter().map(|&id| id.to_owned()));
        self.password = password.into();
        self
    }

    /// An attribute every agent has.
    pub fn attribute(mut self, name: &str, value: u32) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }

    /// How an agent's display name follows from its id; `Agent <id>` unless set.
    pub fn display_names(mut self, display_name: fn(&str) -> String) -> Self {
        self.display_name = display_name;
        self
    }

    /// Logs each agent in on the MRD right after writing it (NOT_READY): signs it in on
    /// `connection` and logs it in as itself.
    pub fn log_in(mut self, connection: &tonic::transport::Channel) -> Self {
        self.login = Some(connection.clone());
        self
    }

    /// Makes every write idempotent, with request ids `<prefix>-mrd`, `<prefix>-queue`,
    /// `<prefix>-reason-<code>`, `<prefix>-agent-<id>` and `<prefix>-login-<id>`.
    pub fn request_ids(mut self, prefix: &str) -> Self {
        self.request_ids = Some(prefix.into());
        self
    }

    fn request_id(&self, what: &str) -> String {
        self.request_ids
            .as_ref()
            .map(|prefix| format!("{prefix}-{what}"))
            .unwrap_or_default()
    }

    /// Writes it all; returns the revision of the last write.
    pub async fn apply(&self, c: &mut Clients) -> u64 {
        let mut revision = c
            .admin
            .upsert_mrd(pb::UpsertMrdRequest {
                mrd: Some(self.mrd.clone()),
                request_id: self.request_id("mrd"),
            })
            .await
            .expect("the MRD is written")
            .into_inner()
            .revision;
        if let Some((name, expression)) = &self.queue {
            revision = c
                .admin
                .upsert_queue(pb::UpsertQueueRequest {
                    queue: Some(one_step_queue(
                        &self.mrd.name,
                        name,
                        expression,
                        pb::Queue::default(),
                    )),
                    request_id: self.request_id("queue"),
                })
                .await
                .expect("the queue is written")
                .into_inner()
                .revision;
        }
        for reason_code in &self.reason_codes {
            revision = c
                .admin
                .upsert_reason_code(pb::UpsertReasonCodeRequest {
                    reason_code: Some(reason_code.clone()),
                    request_id: self.request_id(&format!("reason-{}", reason_code.code)),
                })
                .await
                .expect("the reason code is written")
                .into_inner()
                .revision;
        }
        for agent in &self.agents {
            revision = c
                .admin
                .upsert_agent(pb::UpsertAgentRequest {
                    agent: Some(pb::Agent {
                        agent_id: agent.clone(),
                        display_name: (self.display_name)(agent),
                        password: self.password.clone(),
                        attributes: self.attributes.clone(),
                        mrd_max_tasks: BTreeMap::new(),
                        roles: Vec::new(),
                    }),
                    request_id: self.request_id(&format!("agent-{agent}")),
                })
                .await
                .expect("the agent is written")
                .into_inner()
                .revision;
            if let Some(connection) = &self.login {
                let token = sign_in(connection, Who::Agent(agent), &self.password).await;
                let mut routing = RoutingServiceClient::new(signed(connection.clone(), &token));
                revision = routing
                    .login_agent(pb::LoginAgentRequest {
                        agent_id: agent.clone(),
                        password: self.password.clone(),
                        mrd: self.mrd.name.clone(),
                        request_id: self.request_id(&format!("login-{agent}")),
                    })
                    .await
                    .expect("the agent logs in")
                    .into_inner()
                    .revision;
            }
        }
        revision
    }
}

/// A queue of `mrd` with one step selecting on `expression` and no timeouts; the rest of its
/// settings from `extra`.
pub fn one_step_queue(mrd: &str, name: &str, expression: &str, extra: pb::Queue) -> pb::Queue {
    pb::Queue {
        name: name.into(),
        mrd: mrd.into(),
        steps: vec![pb::QueueStep {
            expression: expression.into(),
            timeout_seconds: 0,
        }],
        ..extra
    }
}

/// Writes `queue` as the first admin.
pub async fn write_queue(c: &mut Clients, queue: pb::Queue) {
    let name = queue.name.clone();
    c.admin
        .upsert_queue(pb::UpsertQueueRequest {
            queue: Some(queue),
            request_id: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("queue {name} is written: {e}"));
}
