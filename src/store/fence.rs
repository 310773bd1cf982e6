//! The epoch of the leader's lease that this node holds, shared between the lease keeper (which
//! sets it) and the journal (which writes only under it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// 0 means "holds no lease": epochs start at 1.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<AtomicU64>);

impl Fence {
    /// From now on, writes are made under `epoch` (0 is the same as `release`).
    pub fn hold(&self, epoch: u64) {
        self.0.store(epoch, Ordering::SeqCst);
    }

    /// From now on, every fenced write is refused.
    pub fn release(&self) {
        self.0.store(0, Ordering::SeqCst);
    }

    pub fn held(&self) -> Option<u64> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            epoch => Some(epoch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_epoch() {
        let fence = Fence::default();
        let journal_side = fence.clone();
        assert_eq!(journal_side.held(), None);
        fence.hold(3);
        assert_eq!(journal_side.held(), Some(3));
        fence.release();
        assert_eq!(journal_side.held(), None);
        fence.hold(0);
        assert_eq!(journal_side.held(), None);
    }

    #[test]
    fn a_fenced_write_says_which_epochs() {
        let stale = crate::store::StoreError::Fenced {
            held: Some(3),
            current: 4,
        };
        assert_eq!(
            stale.to_string(),
            "this node no longer holds the leader's lease (it held epoch 3; the lease is at \
             epoch 4, or has expired): nothing was written"
        );
        let none = crate::store::StoreError::Fenced {
            held: None,
            current: 4,
        };
        assert!(none.to_string().contains("(it holds none;"), "{none}");
    }
}
