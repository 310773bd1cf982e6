//! The generated `switchboard.v1` contract, its codec, and the descriptor set reflection
//! serves.

#![allow(clippy::all, clippy::pedantic)]

use std::fmt;

mod codec;
pub use codec::CompactCodec;

tonic::include_proto!("switchboard.v1");

/// Every `switchboard.v1` file with its comments, for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("switchboard_descriptor");

// Messages that carry a password are built without a derived Debug (see build.rs), so that no
// `{:?}` anywhere can print the secret.

impl fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("id", &self.id)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.agent_id)
            .field("display_name", &self.display_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for ConnectAgentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectAgentRequest")
            .field("agent_id", &self.agent_id)
            .field("password", &"<redacted>")
            .field("extension", &self.extension)
            .field("destination", &self.destination)
            .finish()
    }
}

impl fmt::Debug for LoginAgentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAgentRequest")
            .field("agent_id", &self.agent_id)
            .field("password", &"<redacted>")
            .field("mrd", &self.mrd)
            .finish()
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("account_id", &self.account_id)
            .field("display_name", &self.display_name)
            .field("secret", &"<redacted>")
            .field("roles", &self.roles)
            .finish()
    }
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use login_request::Principal;
        let mut out = f.debug_struct("LoginRequest");
        match &self.principal {
            Some(Principal::AgentId(id)) => out.field("agent_id", id),
            Some(Principal::AccountId(id)) => out.field("account_id", id),
            None => out.field("principal", &None::<()>),
        };
        out.field("password", &"<redacted>").finish()
    }
}

/// Tokens are secrets too: responses that carry them print only who they are for.
macro_rules! redact_tokens {
    ($($message:ident),*) => {$(
        impl fmt::Debug for $message {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($message))
                    .field("principal", &self.principal)
                    .field("roles", &self.roles)
                    .finish_non_exhaustive()
            }
        }
    )*};
}
redact_tokens!(LoginResponse, RefreshResponse);

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshRequest { .. }")
    }
}

impl fmt::Debug for LogoutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogoutRequest { .. }")
    }
}
