//! An ordered set that also answers "how many are before this one" and "which one is n-th" in
//! O(log n): a treap whose nodes count their subtree. It gives a waiting task its position in
//! its queue without walking the tasks ahead of it.
//!
//! Node priorities are a hash of each key's position in the set's insertion count, mixed, so the
//! tree is balanced in expectation whatever order keys arrive in (arrival order is the usual one,
//! which would make a plain search tree a list).

#[derive(Debug, Clone)]
pub struct RankSet<K> {
    root: Link<K>,
    inserted: u64,
}

type Link<K> = Option<Box<Node<K>>>;

#[derive(Debug, Clone)]
struct Node<K> {
    key: K,
    weight: u64,
    size: usize,
    left: Link<K>,
    right: Link<K>,
}

impl<K> Default for RankSet<K> {
    fn default() -> Self {
        Self {
            root: None,
            inserted: 0,
        }
    }
}

fn size<K>(link: &Link<K>) -> usize {
    link.as_ref().map_or(0, |n| n.size)
}

impl<K> Node<K> {
    fn fix(&mut self) {
        self.size = 1 + size(&self.left) + size(&self.right);
    }
}

/// SplitMix64: spreads consecutive counts over the whole range.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Splits into (keys before `key`, keys from `key` on); `inclusive` puts `key` itself left.
fn split<K: Ord>(link: Link<K>, key: &K, inclusive: bool) -> (Link<K>, Link<K>) {
    let Some(mut node) = link else {
        return (None, None);
    };
    let goes_left = if inclusive {
        node.key <= *key
    } else {
        node.key < *key
    };
    if goes_left {
        let (l, r) = split(node.right.take(), key, inclusive);
        node.right = l;
        node.fix();
        (Some(node), r)
    } else {
        let (l, r) = split(node.left.take(), key, inclusive);
        node.left = r;
        node.fix();
        (l, Some(node))
    }
}

/// Joins two trees whose keys are all ordered left before right.
fn merge<K>(left: Link<K>, right: Link<K>) -> Link<K> {
    match (left, right) {
        (None, r) => r,
        (l, None) => l,
        (Some(mut l), Some(mut r)) => {
            if l.weight >= r.weight {
                l.right = merge(l.right.take(), Some(r));
                l.fix();
                Some(l)
            } else {
                r.left = merge(Some(l), r.left.take());
                r.fix();
                Some(r)
            }
        }
    }
}

impl<K: Ord> RankSet<K> {
    pub fn len(&self) -> usize {
        size(&self.root)
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Adds `key`; a key already there stays once.
    pub fn insert(&mut self, key: K) {
        let (left, rest) = split(self.root.take(), &key, false);
        let (_, right) = split(rest, &key, true);
        self.inserted += 1;
        let node = Box::new(Node {
            key,
            weight: mix(self.inserted),
            size: 1,
            left: None,
            right: None,
        });
        self.root = merge(merge(left, Some(node)), right);
    }

    /// Takes `key` out, if it is there.
    pub fn remove(&mut self, key: &K) {
        let (left, rest) = split(self.root.take(), key, false);
        let (_, right) = split(rest, key, true);
        self.root = merge(left, right);
    }

    /// How many keys are before `key` (whether or not `key` is there).
    pub fn rank(&self, key: &K) -> usize {
        let mut before = 0;
        let mut link = &self.root;
        while let Some(node) = link {
            if node.key < *key {
                before += size(&node.left) + 1;
                link = &node.right;
            } else {
                link = &node.left;
            }
        }
        before
    }

    /// The key with `index` keys before it.
    pub fn nth(&self, mut index: usize) -> Option<&K> {
        let mut link = &self.root;
        while let Some(node) = link {
            let left = size(&node.left);
            match index.cmp(&left) {
                std::cmp::Ordering::Less => link = &node.left,
                std::cmp::Ordering::Equal => return Some(&node.key),
                std::cmp::Ordering::Greater => {
                    index -= left + 1;
                    link = &node.right;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::RankSet;
    use std::collections::BTreeSet;

    #[test]
    fn ranks_and_nth_agree_with_a_sorted_set() {
        let mut set = RankSet::default();
        let mut model = BTreeSet::new();
        let mut x: u64 = 7;
        for step in 0..4000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let key = (x >> 33) % 500;
            if step % 3 == 0 {
                set.remove(&key);
                model.remove(&key);
            } else {
                set.insert(key);
                model.insert(key);
            }
            assert_eq!(set.len(), model.len());
            let probe = (x >> 13) % 520;
            assert_eq!(set.rank(&probe), model.range(..probe).count());
            let index = usize::try_from(x % 600).unwrap();
            assert_eq!(set.nth(index), model.iter().nth(index));
        }
    }
}
