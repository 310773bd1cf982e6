//! Signing in, as a desktop or a channel server does: `AuthService.Login` over the real socket,
//! then `authorization: Bearer <access token>` on every call. A fresh data directory's first
//! start creates account `admin` and writes its one-time secret to
//! `<data-dir>/bootstrap-admin.secret`.

use std::path::Path;
use std::time::Duration;

use switchboard::pb;
use switchboard::pb::auth_service_client::AuthServiceClient;
use switchboard::pb::login_request::Principal;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// The first admin's account id.
pub const ADMIN: &str = "admin";
/// Where a server's first start writes the first admin's secret, by default.
pub const SECRET_FILE: &str = "bootstrap-admin.secret";

/// A connection whose every call carries one principal's access token.
pub type Channel = InterceptedService<tonic::transport::Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Who signs in.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    Agent(&'a str),
    Account(&'a str),
}

/// `channel` with `token` on every call.
pub fn signed(channel: tonic::transport::Channel, token: &str) -> Channel {
    InterceptedService::new(channel, Bearer(bearer(token)))
}

/// The `authorization` header's value for `token`.
pub fn bearer(token: &str) -> AsciiMetadataValue {
    format!("Bearer {token}").parse().expect("a token is ASCII")
}

/// Signs `who` in on `channel`; its access token. Panics if refused.
pub async fn sign_in(channel: &tonic::transport::Channel, who: Who<'_>, password: &str) -> String {
    let principal = match who {
        Who::Agent(id) => Principal::AgentId(id.into()),
        Who::Account(id) => Principal::AccountId(id.into()),
    };
    AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            principal: Some(principal),
            password: password.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{who:?} signs in: {e:?}"))
        .into_inner()
        .access_token
}

/// The first admin's secret, as the first start on `data_dir` wrote it. The server writes it
/// before it announces that it serves; a short wait covers a slow file system all the same.
pub fn admin_secret(data_dir: &Path) -> String {
    let path = data_dir.join(SECRET_FILE);
    for _ in 0..100 {
        if let Ok(secret) = std::fs::read_to_string(&path)
            && !secret.trim().is_empty()
        {
            return secret.trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no first admin's secret at {}", path.display())
}
