//! `AdminService`'s principals that are not agents: accounts, and forcing a principal out.

use super::convert::principals::AccountWrite;
use super::paging::{PageRequest, next_page_token};
use super::{Api, request_key};
use crate::domain::commands as cmd;
use crate::domain::{DomainResult, Principal};
use crate::pb;

impl Api {
    pub(super) async fn upsert_account(
        &self,
        who: &Principal,
        req: pb::UpsertAccountRequest,
    ) -> DomainResult<pb::UpsertAccountResponse> {
        // The secret is left out of the request's fingerprint.
        let mut fingerprinted = req.clone();
        if let Some(a) = fingerprinted.account.as_mut() {
            a.secret.clear();
        }
        let key = request_key("UpsertAccount", &req.request_id, &fingerprinted)?;
        let account = AccountWrite::try_from(req)?;
        let secret_hash = match account.secret {
            Some(secret) => Some(self.engine().hash_secret(secret).await?),
            None => None,
        };
        let command = cmd::UpsertAccount {
            account_id: account.account_id,
            display_name: account.display_name,
            roles: account.roles,
            secret_hash,
            client_certificate: account.client_certificate,
        };
        let (written, revision) = self.run(who, key, command).await?;
        Ok(pb::UpsertAccountResponse {
            account: Some(written.account.into()),
            created: written.created,
            revision,
        })
    }

    pub(super) async fn get_account(
        &self,
        who: &Principal,
        req: pb::GetAccountRequest,
    ) -> DomainResult<pb::GetAccountResponse> {
        let (account, revision) = self.run(who, None, cmd::GetAccount::try_from(req)?).await?;
        Ok(pb::GetAccountResponse {
            account: Some(account.into()),
            revision,
        })
    }

    pub(super) async fn list_accounts(
        &self,
        who: &Principal,
        req: pb::ListAccountsRequest,
    ) -> DomainResult<pb::ListAccountsResponse> {
        let PageRequest { after, limit } = PageRequest::parse(req.page_size, &req.page_token)?;
        let (page, revision) = self
            .run(who, None, cmd::ListAccounts { after, limit })
            .await?;
        Ok(pb::ListAccountsResponse {
            next_page_token: next_page_token(&page),
            accounts: page.items.into_iter().map(pb::Account::from).collect(),
            revision,
        })
    }

    pub(super) async fn delete_account(
        &self,
        who: &Principal,
        req: pb::DeleteAccountRequest,
    ) -> DomainResult<pb::DeleteAccountResponse> {
        let key = request_key("DeleteAccount", &req.request_id, &req)?;
        let (_, revision) = self
            .run(who, key, cmd::DeleteAccount::try_from(req)?)
            .await?;
        Ok(pb::DeleteAccountResponse { revision })
    }

    pub(super) async fn revoke_credentials(
        &self,
        who: &Principal,
        req: pb::RevokeCredentialsRequest,
    ) -> DomainResult<pb::RevokeCredentialsResponse> {
        let key = request_key("RevokeCredentials", &req.request_id, &req)?;
        let command = cmd::RevokeCredentials::try_from(req)?;
        let (credential_version, revision) = self.run(who, key, command).await?;
        Ok(pb::RevokeCredentialsResponse {
            credential_version,
            revision,
        })
    }
}
