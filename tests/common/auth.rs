//! Signing in from tests, as a desktop would: `AuthService.Login` over the real socket, then
//! every call with `authorization: Bearer <token>`. A server's first admin signs in with the
//! one-time secret its first start wrote to a file.

use std::path::Path;

use switchboard::pb;
use switchboard::pb::auth_service_client::AuthServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// A connection whose every call carries one principal's access token (or none).
pub type Channel = InterceptedService<tonic::transport::Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// `channel` with `token` on every call.
pub fn signed(channel: tonic::transport::Channel, token: &str) -> Channel {
    let value = format!("Bearer {token}").parse().expect("a token is ASCII");
    InterceptedService::new(channel, Bearer(Some(value)))
}

/// `channel` with no token at all.
pub fn unsigned(channel: tonic::transport::Channel) -> Channel {
    InterceptedService::new(channel, Bearer(None))
}

/// Who signs in.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    Agent(&'a str),
    Account(&'a str),
}

pub fn login_request(who: Who<'_>, password: &str) -> pb::LoginRequest {
    use pb::login_request::Principal;
    pb::LoginRequest {
        principal: Some(match who {
            Who::Agent(id) => Principal::AgentId(id.into()),
            Who::Account(id) => Principal::AccountId(id.into()),
        }),
        password: password.into(),
    }
}

/// Signs in; the whole answer (access and refresh tokens).
pub async fn try_sign_in(
    channel: &tonic::transport::Channel,
    who: Who<'_>,
    password: &str,
) -> Result<pb::LoginResponse, Status> {
    AuthServiceClient::new(channel.clone())
        .login(login_request(who, password))
        .await
        .map(tonic::Response::into_inner)
}

/// Signs in and returns the access token; panics if refused.
pub async fn sign_in(channel: &tonic::transport::Channel, who: Who<'_>, password: &str) -> String {
    try_sign_in(channel, who, password)
        .await
        .unwrap_or_else(|e| panic!("{who:?} signs in: {e:?}"))
        .access_token
}

/// The first admin's one-time secret, as the server's first start wrote it.
pub fn read_bootstrap_secret(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the bootstrap secret at {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// The first admin's account id.
pub const ADMIN: &str = "admin";
