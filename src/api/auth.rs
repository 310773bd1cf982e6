//! `AuthService`: signing in (password or secret -> access and refresh tokens), refreshing,
//! signing out, and who the caller is. Passwords are checked on the login gate's pool, and
//! only hashes of refresh tokens reach the engine.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::{Request, Response};

use super::convert::principals::{LoginWrite, wire_roles};
use super::convert::refresh_tokens::RefreshToken;
use super::{Api, ApiResult, caller, reply};
use crate::domain::commands::{self as cmd, Refreshed, Standing};
use crate::domain::{DomainError, DomainResult, Principal};
use crate::pb;
use crate::pb::auth_service_server::AuthService;

/// Both answers carry the same tokens.
struct Tokens {
    access_token: String,
    expires_in_secs: u64,
    refresh_token: String,
    principal: String,
    roles: Vec<i32>,
}

impl Api {
    async fn login(
        &self,
        req: pb::LoginRequest,
        peer: Option<IpAddr>,
    ) -> DomainResult<pb::LoginResponse> {
        let LoginWrite {
            principal,
            password,
        } = LoginWrite::try_from(req)?;
        let credential = self
            .engine()
            .verify_principal(&principal, password, peer)
            .await?;
        let refresh = RefreshToken::mint(None);
        let command = cmd::SignIn {
            principal: principal.clone(),
            verified_hash: credential.secret_hash,
            chain_id: refresh.chain_id.clone(),
            token_hash: refresh.hash(),
            expires_ms: self.refresh_expiry_ms(),
        };
        let who = Principal {
            actor: principal,
            roles: credential.roles,
        };
        let (standing, _) = self.run(&who, None, command).await?;
        let t = self.tokens_for(&standing, &refresh)?;
        Ok(pb::LoginResponse {
            access_token: t.access_token,
            expires_in_secs: t.expires_in_secs,
            refresh_token: t.refresh_token,
            principal: t.principal,
            roles: t.roles,
        })
    }

    async fn refresh(&self, req: pb::RefreshRequest) -> DomainResult<pb::RefreshResponse> {
        let presented = RefreshToken::parse(&req.refresh_token)?;
        let next = RefreshToken::mint(Some(presented.chain_id.clone()));
        let command = cmd::Refresh {
            chain_id: presented.chain_id.clone(),
            presented_hash: presented.hash(),
            next_hash: next.hash(),
            expires_ms: self.refresh_expiry_ms(),
        };
        let who = self.chain_principal(&presented).await?;
        let (refreshed, _) = self.run(&who, None, command).await?;
        let Refreshed::Rotated(standing) = refreshed else {
            return Err(DomainError::Unauthenticated);
        };
        let t = self.tokens_for(&standing, &next)?;
        Ok(pb::RefreshResponse {
            access_token: t.access_token,
            expires_in_secs: t.expires_in_secs,
            refresh_token: t.refresh_token,
            principal: t.principal,
            roles: t.roles,
        })
    }

    async fn logout(&self, req: pb::LogoutRequest) -> DomainResult<pb::LogoutResponse> {
        let presented = RefreshToken::parse(&req.refresh_token)?;
        let command = cmd::SignOut {
            chain_id: presented.chain_id.clone(),
            presented_hash: presented.hash(),
        };
        // Signing out of a chain that already ended is done already.
        match self.chain_principal(&presented).await {
            Ok(who) => {
                self.run(&who, None, command).await?;
            }
            Err(DomainError::Unauthenticated) => {}
            Err(e) => return Err(e),
        }
        Ok(pb::LogoutResponse {})
    }

    /// The principal whose chain a refresh token names, to record what the token does as
    /// that principal's; an unknown chain is refused like a bad token.
    async fn chain_principal(&self, token: &RefreshToken) -> DomainResult<Principal> {
        let query = cmd::ChainPrincipal {
            chain_id: token.chain_id.clone(),
        };
        let (actor, _) = self.run(&Principal::engine(), None, query).await?;
        let actor = actor.ok_or(DomainError::Unauthenticated)?;
        Ok(Principal {
            actor,
            roles: Default::default(),
        })
    }

    /// A new access token for `standing`, and the refresh token to hand out with it.
    fn tokens_for(&self, standing: &Standing, refresh: &RefreshToken) -> DomainResult<Tokens> {
        let now = unix_secs();
        let access = self
            .inner
            .auth
            .issuer
            .issue(
                &standing.principal,
                &standing.roles,
                standing.credential_version,
                now,
            )
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        Ok(Tokens {
            access_token: access.token,
            expires_in_secs: access.expires_at_secs.saturating_sub(now),
            refresh_token: refresh.reveal(),
            principal: standing.principal.to_string(),
            roles: wire_roles(&standing.roles),
        })
    }

    fn refresh_expiry_ms(&self) -> u64 {
        unix_secs()
            .saturating_add(self.inner.auth.refresh_ttl_secs)
            .saturating_mul(1000)
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tonic::async_trait]
impl AuthService for Api {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> ApiResult<Response<pb::LoginResponse>> {
        let peer = request.remote_addr().map(|a| a.ip());
        reply(Api::login(self, request.into_inner(), peer).await)
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> ApiResult<Response<pb::RefreshResponse>> {
        reply(Api::refresh(self, request.into_inner()).await)
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> ApiResult<Response<pb::LogoutResponse>> {
        reply(Api::logout(self, request.into_inner()).await)
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> ApiResult<Response<pb::WhoAmIResponse>> {
        let who = caller(&request)?;
        Ok(Response::new(pb::WhoAmIResponse {
            principal: who.actor.to_string(),
            roles: wire_roles(&who.roles),
        }))
    }
}
