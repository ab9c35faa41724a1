//! [`MergeIter`]: merges sorted sources into one sorted stream. Sources are listed newest
//! first; internal keys are unique (distinct sequence numbers), so ties cannot occur
//! between correct sources, and if they do the newer source wins.

use bytes::Bytes;

use super::InternalIter;
use crate::error::Result;
use crate::types::cmp_encoded;

#[derive(Debug)]
pub(crate) struct MergeIter {
    children: Vec<Box<dyn InternalIter>>,
    current: Option<usize>,
    /// The child with the second-smallest key when `current` was picked. Only `current`
    /// moves on `next`, so while its key stays below this one's it remains the smallest:
    /// long runs from one source cost one comparison per entry instead of one per source.
    runner_up: Option<usize>,
}

impl MergeIter {
    pub(crate) fn new(children: Vec<Box<dyn InternalIter>>) -> Self {
        MergeIter {
            children,
            current: None,
            runner_up: None,
        }
    }

    /// Whether child `a`'s key orders before child `b`'s (on a tie, the newer source,
    /// listed first, wins).
    fn before(&self, a: usize, b: usize) -> bool {
        match cmp_encoded(self.children[a].key(), self.children[b].key()) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => a < b,
            std::cmp::Ordering::Greater => false,
        }
    }

    /// Picks the child with the smallest key, and the runner-up. Sources are few
    /// (memtables, L0 tables and one per deeper level), so a linear scan beats a heap's
    /// bookkeeping.
    fn pick(&mut self) {
        let mut best: Option<usize> = None;
        let mut second: Option<usize> = None;
        for i in 0..self.children.len() {
            if !self.children[i].valid() {
                continue;
            }
            match best {
                Some(b) if self.before(b, i) => {
                    if second.is_none_or(|s| self.before(i, s)) {
                        second = Some(i);
                    }
                }
                _ => {
                    second = best;
                    best = Some(i);
                }
            }
        }
        self.current = best;
        self.runner_up = second;
    }
}

impl InternalIter for MergeIter {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn key(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].key())
    }

    fn value(&self) -> Bytes {
        self.current
            .map(|i| self.children[i].value())
            .unwrap_or_default()
    }

    fn value_slice(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].value_slice())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(i) = self.current {
            self.children[i].next()?;
            let stays =
                self.children[i].valid() && self.runner_up.is_none_or(|r| self.before(i, r));
            if stays {
                return Ok(());
            }
        }
        self.pick();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.pick();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{encode_internal, trailer, Kind};

    /// A sorted vector as a source.
    #[derive(Debug)]
    struct VecIter {
        items: Vec<(Vec<u8>, Bytes)>,
        pos: usize,
    }

    impl InternalIter for VecIter {
        fn valid(&self) -> bool {
            self.pos < self.items.len()
        }
        fn key(&self) -> &[u8] {
            &self.items[self.pos].0
        }
        fn value(&self) -> Bytes {
            self.items[self.pos].1.clone()
        }
        fn value_slice(&self) -> &[u8] {
            &self.items[self.pos].1
        }
        fn next(&mut self) -> Result<()> {
            self.pos += 1;
            Ok(())
        }
        fn seek(&mut self, target: &[u8]) -> Result<()> {
            self.pos = self
                .items
                .iter()
                .position(|(k, _)| cmp_encoded(k, target).is_ge())
                .unwrap_or(self.items.len());
            Ok(())
        }
    }

    fn ikey(user: u32, seq: u64) -> Vec<u8> {
        let mut k = Vec::new();
        encode_internal(&mut k, &user.to_be_bytes(), trailer(seq, Kind::Value));
        k
    }

    /// Sources with runs, interleavings, an empty one, and the same internal key in two
    /// sources (the newer, listed first, must come first): the merge equals sorting all.
    #[test]
    fn merges_runs_and_interleavings_in_order() {
        let layouts: Vec<Vec<(u32, u64)>> = vec![
            vec![(1, 9), (2, 9), (3, 9), (50, 9), (51, 9)],
            vec![],
            vec![(0, 1), (4, 1), (5, 1), (6, 1), (7, 1), (52, 1)],
            vec![(3, 9), (8, 2), (9, 2), (100, 2)],
            vec![(2, 5), (60, 5)],
        ];
        let mut expected: Vec<(Vec<u8>, usize)> = Vec::new();
        let children: Vec<Box<dyn InternalIter>> = layouts
            .iter()
            .enumerate()
            .map(|(src, l)| {
                let items: Vec<(Vec<u8>, Bytes)> = l
                    .iter()
                    .map(|&(u, s)| {
                        expected.push((ikey(u, s), src));
                        (ikey(u, s), Bytes::from(vec![src as u8]))
                    })
                    .collect();
                Box::new(VecIter { items, pos: 0 }) as Box<dyn InternalIter>
            })
            .collect();
        expected.sort_by(|a, b| cmp_encoded(&a.0, &b.0).then(a.1.cmp(&b.1)));
        let mut m = MergeIter::new(children);
        m.seek(&[]).unwrap();
        let mut got = Vec::new();
        while m.valid() {
            got.push((m.key().to_vec(), m.value()[0] as usize));
            m.next().unwrap();
        }
        assert_eq!(got, expected);
        // Seeking into the middle restarts every source there.
        m.seek(&ikey(6, u64::MAX >> 8)).unwrap();
        assert_eq!(m.key(), &ikey(6, 1)[..]);
        m.next().unwrap();
        assert_eq!(m.key(), &ikey(7, 1)[..]);
    }
}
