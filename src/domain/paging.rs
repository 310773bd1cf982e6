//! Listings in key order, a page at a time: one page and the key to continue after. Written
//! once for every listing; the API turns `next_after` into an opaque page token.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

/// One page of a listing in key order, and the key to continue after when there is more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    /// Up to `limit` values of `map` after the key `after`.
    pub fn of_map<V>(
        map: &BTreeMap<String, V>,
        after: Option<&str>,
        limit: usize,
        item: impl FnMut(&V) -> T,
    ) -> Self {
        let rows = map.range::<str, _>((start(after), Bound::Unbounded));
        Self::collect(rows, limit, item)
    }

    /// Up to `limit` keys of `set` after `after`, each made into an item.
    pub fn of_set(
        set: &BTreeSet<String>,
        after: Option<&str>,
        limit: usize,
        item: impl FnMut(&String) -> T,
    ) -> Self {
        let rows = set
            .range::<str, _>((start(after), Bound::Unbounded))
            .map(|key| (key, key));
        Self::collect(rows, limit, item)
    }

    fn collect<'a, V: 'a>(
        rows: impl Iterator<Item = (&'a String, &'a V)>,
        limit: usize,
        mut item: impl FnMut(&V) -> T,
    ) -> Self {
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut last: Option<&String> = None;
        for (key, value) in rows {
            if items.len() == limit {
                // There is a row after the page: the next page starts after its last key.
                return Self {
                    items,
                    next_after: last.cloned(),
                };
            }
            items.push(item(value));
            last = Some(key);
        }
        Self {
            items,
            next_after: None,
        }
    }
}

fn start(after: Option<&str>) -> Bound<&str> {
    after.map_or(Bound::Unbounded, Bound::Excluded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_gap_or_overlap() {
        let map: BTreeMap<String, u32> = (0..5).map(|i| (format!("k{i}"), i)).collect();
        let first = Page::of_map(&map, None, 2, |v| *v);
        assert_eq!(
            (first.items.clone(), first.next_after.as_deref()),
            (vec![0, 1], Some("k1"))
        );
        let second = Page::of_map(&map, first.next_after.as_deref(), 2, |v| *v);
        assert_eq!(second.items, vec![2, 3]);
        let last = Page::of_map(&map, second.next_after.as_deref(), 2, |v| *v);
        assert_eq!((last.items, last.next_after), (vec![4], None));
        let exact = Page::of_map(&map, None, 5, |v| *v);
        assert_eq!(exact.next_after, None, "no empty page after an exact fit");
        let set: BTreeSet<String> = map.keys().cloned().collect();
        let keys = Page::of_set(&set, Some("k3"), 10, String::clone);
        assert_eq!(keys.items, vec!["k4".to_owned()]);
    }
}
