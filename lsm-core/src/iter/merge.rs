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
    /// The valid children as a binary min-heap ordered by (key, index): `heap[0]` is the
    /// current source. Advancing it costs a sift of `O(log sources)` comparisons (two
    /// while it stays the smallest), not a scan of every source.
    heap: Vec<usize>,
}

impl MergeIter {
    pub(crate) fn new(children: Vec<Box<dyn InternalIter>>) -> Self {
        let heap = Vec::with_capacity(children.len());
        MergeIter { children, heap }
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

    /// Restores the heap order below `pos`.
    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= n {
                return;
            }
            let right = left + 1;
            let child = if right < n && self.before(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            if !self.before(self.heap[child], self.heap[pos]) {
                return;
            }
            self.heap.swap(child, pos);
            pos = child;
        }
    }

    /// Rebuilds the heap from every valid child.
    fn rebuild(&mut self) {
        self.heap.clear();
        for i in 0..self.children.len() {
            if self.children[i].valid() {
                self.heap.push(i);
            }
        }
        for pos in (0..self.heap.len() / 2).rev() {
            self.sift_down(pos);
        }
    }

    fn current(&self) -> Option<usize> {
        self.heap.first().copied()
    }
}

impl InternalIter for MergeIter {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn key(&self) -> &[u8] {
        self.current().map_or(&[], |i| self.children[i].key())
    }

    fn value(&self) -> Bytes {
        self.current()
            .map(|i| self.children[i].value())
            .unwrap_or_default()
    }

    fn value_slice(&self) -> &[u8] {
        self.current()
            .map_or(&[], |i| self.children[i].value_slice())
    }

    fn next(&mut self) -> Result<()> {
        let Some(top) = self.current() else {
            return Ok(());
        };
        self.children[top].next()?;
        if !self.children[top].valid() {
            self.heap.swap_remove(0);
        }
        self.sift_down(0);
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.rebuild();
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

    /// Random layouts (1 to 9 sources, runs and interleavings, duplicates across sources),
    /// walked from the start and from random seek targets: always the sorted merge.
    #[test]
    fn random_layouts_merge_in_order() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..300 {
            let sources = 1 + rnd(9) as usize;
            let mut all: Vec<(Vec<u8>, usize)> = Vec::new();
            let mut children: Vec<Box<dyn InternalIter>> = Vec::new();
            for src in 0..sources {
                let mut items: Vec<(Vec<u8>, Bytes)> = (0..rnd(40))
                    .map(|_| {
                        let (user, seq) = (rnd(60) as u32, rnd(4));
                        (ikey(user, seq), Bytes::from(vec![src as u8]))
                    })
                    .collect();
                items.sort_by(|a, b| cmp_encoded(&a.0, &b.0));
                items.dedup_by(|a, b| a.0 == b.0);
                all.extend(items.iter().map(|(k, _)| (k.clone(), src)));
                children.push(Box::new(VecIter { items, pos: 0 }));
            }
            all.sort_by(|a, b| cmp_encoded(&a.0, &b.0).then(a.1.cmp(&b.1)));
            let mut m = MergeIter::new(children);
            let target = ikey(rnd(64) as u32, u64::MAX >> 8);
            for from in [Vec::new(), target] {
                m.seek(&from).unwrap();
                let mut got = Vec::new();
                while m.valid() {
                    got.push((m.key().to_vec(), m.value_slice()[0] as usize));
                    m.next().unwrap();
                }
                let want: Vec<_> = all
                    .iter()
                    .filter(|(k, _)| cmp_encoded(k, &from).is_ge())
                    .cloned()
                    .collect();
                assert_eq!(got, want);
            }
        }
    }
}
