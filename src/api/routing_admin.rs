//! The routing configuration half of `AdminService`: media routing domains, queues and reason
//! codes. (`admin` serves the agent directory and wires both halves to the service.)

use super::{Api, request_key};
use crate::domain::DomainResult;
use crate::domain::Principal;
use crate::domain::commands as cmd;
use crate::pb;

impl Api {
    pub(super) async fn upsert_mrd(
        &self,
        who: &Principal,
        req: pb::UpsertMrdRequest,
    ) -> DomainResult<pb::UpsertMrdResponse> {
        let key = request_key("UpsertMrd", &req.request_id, &req)?;
        let command = cmd::UpsertMrd::try_from(req)?;
        let mrd = command.0.clone();
        let (_, revision) = self.run(who, key, command).await?;
        Ok(pb::UpsertMrdResponse {
            mrd: Some(mrd.into()),
            revision,
        })
    }

    pub(super) async fn list_mrds(&self, who: &Principal) -> DomainResult<pb::ListMrdsResponse> {
        let (mrds, revision) = self.run(who, None, cmd::ListMrds).await?;
        Ok(pb::ListMrdsResponse {
            mrds: mrds.into_iter().map(pb::Mrd::from).collect(),
            revision,
        })
    }

    pub(super) async fn delete_mrd(
        &self,
        who: &Principal,
        req: pb::DeleteMrdRequest,
    ) -> DomainResult<pb::DeleteMrdResponse> {
        let key = request_key("DeleteMrd", &req.request_id, &req)?;
        let (_, revision) = self.run(who, key, cmd::DeleteMrd::try_from(req)?).await?;
        Ok(pb::DeleteMrdResponse { revision })
    }

    pub(super) async fn upsert_queue(
        &self,
        who: &Principal,
        req: pb::UpsertQueueRequest,
    ) -> DomainResult<pb::UpsertQueueResponse> {
        let key = request_key("UpsertQueue", &req.request_id, &req)?;
        let command = cmd::UpsertQueue::try_from(req)?;
        let queue = command.0.clone();
        let (_, revision) = self.run(who, key, command).await?;
        Ok(pb::UpsertQueueResponse {
            queue: Some(queue.into()),
            revision,
        })
    }

    pub(super) async fn list_queues(
        &self,
        who: &Principal,
    ) -> DomainResult<pb::ListQueuesResponse> {
        let (queues, revision) = self.run(who, None, cmd::ListQueues).await?;
        Ok(pb::ListQueuesResponse {
            queues: queues.into_iter().map(pb::Queue::from).collect(),
            revision,
        })
    }

    pub(super) async fn delete_queue(
        &self,
        who: &Principal,
        req: pb::DeleteQueueRequest,
    ) -> DomainResult<pb::DeleteQueueResponse> {
        let key = request_key("DeleteQueue", &req.request_id, &req)?;
        let (_, revision) = self.run(who, key, cmd::DeleteQueue::try_from(req)?).await?;
        Ok(pb::DeleteQueueResponse { revision })
    }

    pub(super) async fn upsert_reason_code(
        &self,
        who: &Principal,
        req: pb::UpsertReasonCodeRequest,
    ) -> DomainResult<pb::UpsertReasonCodeResponse> {
        let key = request_key("UpsertReasonCode", &req.request_id, &req)?;
        let command = cmd::UpsertReasonCode::try_from(req)?;
        let reason = command.0.clone();
        let (_, revision) = self.run(who, key, command).await?;
        Ok(pb::UpsertReasonCodeResponse {
            reason_code: Some(reason.into()),
            revision,
        })
    }

    pub(super) async fn list_reason_codes(
        &self,
        who: &Principal,
    ) -> DomainResult<pb::ListReasonCodesResponse> {
        let (codes, revision) = self.run(who, None, cmd::ListReasonCodes).await?;
        Ok(pb::ListReasonCodesResponse {
            reason_codes: codes.into_iter().map(pb::ReasonCode::from).collect(),
            revision,
        })
    }
}
