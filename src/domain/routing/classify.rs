//! Classification: the queue and priority of a task whose channel names no queue.
//!
//! An MRD holds ordered classifiers, each an expression over the task's attributes and labels
//! (`TaskExpr`, e.g. `channel = web AND vip`) with the queue and priority it gives. The first
//! that matches wins; a task none matches gets the MRD's unclassified queue and priority. A
//! task that names a queue is not classified: the channel's choice stands (an unknown name
//! still sends it to `default`, as it always did).
//!
//! A classifier may name a queue that does not exist (yet): MRDs are configured before their
//! queues, and refusing would force an order on operators. A task it matches goes to the MRD's
//! `default` queue, as a channel's unknown queue does, and `TaskQueued` still names the
//! classifier, so the gap is visible.

use serde::{Deserialize, Serialize};

use super::Routing;
use super::config::{DEFAULT_QUEUE, MrdConfig};
use super::expr::TaskExpr;
use super::index::QueueKey;
use super::model::TaskSpec;
use crate::domain::bounds::{
    MAX_CLASSIFIERS, check_count, check_id, check_name, check_optional_id, check_priority, in_entry,
};
use crate::domain::error::DomainResult;

/// One filter of an MRD's classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classifier {
    /// Shown in `TaskQueued`; may be empty.
    pub name: String,
    pub expression: TaskExpr,
    pub queue: String,
    /// 0: the task keeps its own priority.
    pub priority: u8,
}

/// How the queue and priority of a new task were chosen, as `TaskQueued` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueChoice {
    /// The channel named the queue (journals from before classification read so too).
    #[default]
    Channel,
    /// This classifier of the MRD (0-based, and its name) matched first.
    Classifier { index: usize, name: String },
    /// No classifier matched: the MRD's unclassified queue and priority applied.
    Unclassified,
}

/// Checks an MRD's classification: the number of classifiers, and each one's name, queue and
/// priority. (Expressions are checked when parsed.)
pub(super) fn validate(mrd: &MrdConfig) -> DomainResult<()> {
    check_count(
        "mrd.classifiers",
        mrd.classifiers.len(),
        MAX_CLASSIFIERS,
        "classifiers",
    )?;
    for (index, classifier) in mrd.classifiers.iter().enumerate() {
        in_entry(
            format_args!("classifier {index}"),
            check_name("mrd.classifiers.name", &classifier.name)
                .and_then(|()| check_id("mrd.classifiers.queue", &classifier.queue))
                .and_then(|()| {
                    check_optional_priority("mrd.classifiers.priority", classifier.priority)
                }),
        )?;
    }
    check_optional_id("mrd.unclassified_queue", &mrd.unclassified_queue)?;
    check_optional_priority("mrd.unclassified_priority", mrd.unclassified_priority)
}

fn check_optional_priority(field: &'static str, priority: u8) -> DomainResult<()> {
    if priority == 0 {
        Ok(())
    } else {
        check_priority(field, priority)
    }
}

impl Routing {
    /// The queue and priority a new task gets, and how they were chosen.
    pub(super) fn classify(&self, spec: &TaskSpec) -> (String, u8, QueueChoice) {
        let keep = |queue: &str, priority: u8| {
            let known = self.queues.contains_key(&QueueKey::new(&spec.mrd, queue));
            let queue = if known { queue } else { DEFAULT_QUEUE };
            let priority = if priority == 0 {
                spec.priority
            } else {
                priority
            };
            (queue.to_owned(), priority)
        };
        let Some(mrd) = self.mrds.get(&spec.mrd) else {
            return (DEFAULT_QUEUE.into(), spec.priority, QueueChoice::Channel);
        };
        if !spec.queue.is_empty() {
            let (queue, priority) = keep(&spec.queue, 0);
            return (queue, priority, QueueChoice::Channel);
        }
        let matched = mrd
            .classifiers
            .iter()
            .enumerate()
            .find(|(_, c)| c.expression.matches(&spec.attributes, &spec.labels));
        match matched {
            Some((index, c)) => {
                let (queue, priority) = keep(&c.queue, c.priority);
                let choice = QueueChoice::Classifier {
                    index,
                    name: c.name.clone(),
                };
                (queue, priority, choice)
            }
            None => {
                let (queue, priority) = keep(&mrd.unclassified_queue, mrd.unclassified_priority);
                (queue, priority, QueueChoice::Unclassified)
            }
        }
    }
}
