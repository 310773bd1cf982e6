//! Classification end to end over gRPC: `UpsertMrd` with classifiers, a `NewTask` naming no
//! queue lands in the classified queue with its priority, and `TaskQueued` names the
//! classifier. Bad classifiers are INVALID_ARGUMENT naming the field.

mod common;

use std::time::Duration;

use common::routing_setup::RoutingSetup;
use common::{TestServer, assert_status};
use switchboard::pb;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(10);

fn chat_mrd(classifiers: Vec<pb::Classifier>) -> pb::UpsertMrdRequest {
    pb::UpsertMrdRequest {
        mrd: Some(pb::Mrd {
            name: "chat".into(),
            max_tasks: 2,
            offer_timeout_seconds: 30,
            classifiers,
            unclassified_queue: "triage".into(),
            unclassified_priority: 2,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn classifier(name: &str, expression: &str, queue: &str, priority: u32) -> pb::Classifier {
    pb::Classifier {
        name: name.into(),
        expression: expression.into(),
        queue: queue.into(),
        priority,
    }
}

fn new_task(attributes: &[(&str, &str)], labels: &[&str]) -> pb::NewTaskRequest {
    pb::NewTaskRequest {
        mrd: "chat".into(),
        priority: 4,
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        labels: labels.iter().map(|l| (*l).into()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn classifiers_pick_queue_and_priority_and_task_queued_says_which() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    RoutingSetup::chat()
        .queue("vip", "TRUE")
        .apply(&mut c)
        .await;
    for queue in ["web", "triage"] {
        RoutingSetup::chat()
            .queue(queue, "TRUE")
            .apply(&mut c)
            .await;
    }
    let written = c
        .admin
        .upsert_mrd(chat_mrd(vec![
            classifier("web vip", "channel = web AND vip", "vip", 9),
            classifier("web", "channel = web", "web", 0),
        ]))
        .await
        .unwrap()
        .into_inner();
    let mrd = written.mrd.unwrap();
    assert_eq!(mrd.classifiers.len(), 2);
    assert_eq!(mrd.classifiers[0].expression, "channel = web AND vip");
    assert_eq!(mrd.unclassified_queue, "triage");

    let mut r = RoutingServiceClient::new(server.channel().await);
    let mut watch = r
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision: 1,
            kinds: vec![pb::RoutingEventKind::TaskQueued.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let cases = [
        (
            new_task(&[("channel", "web")], &["vip"]),
            ("vip", 9, pb::QueueChoice::Classifier, 0, "web vip"),
        ),
        (
            new_task(&[("channel", "web")], &[]),
            ("web", 4, pb::QueueChoice::Classifier, 1, "web"),
        ),
        (
            new_task(&[("channel", "phone")], &[]),
            ("triage", 2, pb::QueueChoice::Unclassified, 0, ""),
        ),
        (
            pb::NewTaskRequest {
                queue: "web".into(),
                ..new_task(&[("channel", "web")], &["vip"])
            },
            ("web", 4, pb::QueueChoice::Channel, 0, ""),
        ),
    ];
    for (request, expected) in cases {
        let created = r.new_task(request).await.unwrap().into_inner();
        let task = created.task.unwrap();
        assert_eq!(
            (task.queue.as_str(), task.priority),
            (expected.0, expected.1)
        );
        let queued = loop {
            let frame = tokio::time::timeout(WAIT, watch.next())
                .await
                .expect("a TaskQueued on the watch")
                .unwrap()
                .unwrap();
            if let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame
                && let Some(Ev::TaskQueued(q)) = event.event
                && q.task_id == created.task_id
            {
                break q;
            }
        };
        assert_eq!(
            (
                queued.queue.as_str(),
                queued.priority,
                queued.queue_choice(),
                queued.classifier_index,
                queued.classifier_name.as_str()
            ),
            expected
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_classifiers_are_invalid_argument_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let cases = [
        (
            vec![
                classifier("ok", "TRUE", "web", 0),
                classifier("bad", "channel >", "web", 0),
            ],
            "mrd.classifiers.expression: classifier 1: column 10: expected a number, a word, TRUE or FALSE",
        ),
        (
            vec![classifier("words", "channel > web", "web", 0)],
            "mrd.classifiers.expression: classifier 0: column 9: a word compares only with = or !=",
        ),
        (
            vec![classifier("queue", "TRUE", "", 0)],
            "mrd.classifiers.queue: classifier 0:",
        ),
        (
            vec![classifier("priority", "TRUE", "web", 11)],
            "mrd.classifiers.priority: classifier 0: must be 1 to 10, not 11",
        ),
        (
            vec![classifier("priority", "TRUE", "web", 300)],
            "mrd.classifiers.priority: classifier 0: must be 0 to 10, not 300",
        ),
    ];
    for (classifiers, message) in cases {
        assert_status(
            c.admin.upsert_mrd(chat_mrd(classifiers)).await,
            Code::InvalidArgument,
            message,
        );
    }
    server.stop().await;
}
