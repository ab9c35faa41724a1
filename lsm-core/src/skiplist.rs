//! The memtable's ordered index: a skip list whose nodes live in arena chunks it owns.
//!
//! One writer at a time inserts (serialised by a mutex that only the commit leader and
//! recovery take, so it is never contended); any number of readers search and walk the
//! list concurrently without locks or reference counts. Each entry is one node holding
//! its tower of next pointers, its encoded internal key (`user key ++ trailer`, LE, the
//! form SSTable blocks use) and its value, contiguous in one bump allocation: an insert
//! allocates nothing from the global allocator (a new chunk every few thousand entries),
//! a search touches one cache line per visited node, and dropping the list frees a few
//! chunks instead of a node per entry.
//!
//! Linking is deferred. An insert writes the node and records it as unlinked (and in
//! the point index, see below); the first [`SkipList::seek`] (or, in tests, `first`)
//! after it links every unlinked node, sorted, each search starting from the previous
//! one's predecessors (a finger search). A write thus costs no search of the list (on a
//! memtable of a few hundred thousand entries, ~10 levels of dependent cache misses, the
//! largest part of an insert), and a memtable that is only written and point-read until
//! its flush is sorted once, by the flush, in one batch: ascending inserts that touch
//! only the nodes the previous one touched. Linking is serialised by a mutex of its own
//! (the linker), so a reader that links never holds up the writer, and an iterator that
//! links sees every node inserted before it started.
//!
//! Invariants:
//! - Nodes are never moved, changed or freed while the list lives: only their next and
//!   `older` pointers are written after publication, only atomically, next pointers only
//!   by the linker, `older` pointers only by the writer.
//! - A node is fully written before it is recorded as unlinked (under the writer mutex,
//!   which the linker takes to collect them) and before the release store that names it
//!   in the point index; it is linked at level 0 by a release store; readers follow links
//!   and slots with acquire loads, so any node a reader reaches is initialised.
//! - Every node inserted before a call to `seek` or `first` returned (as seen through
//!   `len`, stored after the node was recorded) is linked when it returns.
//! - A node is linked at level `i` only if its height is above `i`, so a reader that
//!   reached it through level `i` may read its tower entry `i`.
//! - [`Pos`] values name nodes of the list that made them (checked by its id), so they
//!   are valid exactly as long as a reference to that list is.
//!
//! Point index (optional, [`SkipList::with_point_index`]): an open-addressing hash table
//! from each user key to its newest node, so a lookup at the newest sequence reads one
//! slot and one node instead of a node per level. Each slot is one atomic word, the node
//! pointer in its low 48 bits and 16 bits of the key's hash above them; the writer
//! stores a key's slot after linking the node, and replaces it (atomically) when a newer
//! version of the key is inserted. A slot, once it names a key, names that key forever
//! (nothing is removed), and the table is at most half full, so every probe sequence
//! ends at an empty slot. When it would be more than half full, the writer builds a
//! table twice the size and publishes it; old tables stay allocated until the list
//! drops, so a reader still probing one never reads freed memory. With the index, each
//! node also points to the key's next older version (`older`, set before the node is
//! published in the slot), so a read at an older snapshot walks that chain instead of
//! searching the list ([`SkipList::older`]).
//!
//! Layout of a node (8-byte aligned): `[next[h-1] .. next[0]] [header] [user key]
//! [trailer u64 LE] [value]`. A node pointer points at the header; its tower lies just
//! below it, so the level-0 link and the header share a cache line.

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::cmp::Ordering as CmpOrdering;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use std::sync::Arc;

use parking_lot::Mutex;

/// Tallest tower. With a branching factor of 4, enough for ~16M entries before searches
/// get longer than `log4(n)` levels.
pub(crate) const MAX_HEIGHT: usize = 12;
/// One node in `BRANCHING` reaches each next level.
const BRANCHING: u64 = 4;

/// Bytes of a node besides its tower, key and value.
const HEADER_BYTES: usize = std::mem::size_of::<Header>();
const LINK_BYTES: usize = std::mem::size_of::<AtomicPtr<Header>>();

#[repr(C)]
struct Header {
    /// The first 8 bytes of the user key, zero-padded, big-endian: where two prefixes
    /// differ they order as their keys do, so most comparisons read nothing else.
    prefix: u64,
    /// The user key's length in the low 24 bits (keys are at most 64 KiB), the tower's
    /// height above them.
    key_len_height: u32,
    value_len: u32,
    /// The next older version of the same user key (null if none, or without a point
    /// index). Written by the writer only.
    older: AtomicPtr<Header>,
}

impl Header {
    #[inline]
    fn key_len(&self) -> usize {
        (self.key_len_height & KEY_LEN_MASK) as usize
    }

    #[inline]
    fn height(&self) -> usize {
        (self.key_len_height >> KEY_LEN_BITS) as usize
    }
}

/// Bits of [`Header::key_len_height`] that hold the key's length.
const KEY_LEN_BITS: u32 = 24;
const KEY_LEN_MASK: u32 = (1 << KEY_LEN_BITS) - 1;

/// The first 8 bytes of `key`, zero-padded, as a big-endian number (see [`Header`]).
#[inline]
fn key_prefix(key: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = key.len().min(8);
    p[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(p)
}

/// A search target: a user key and trailer, ordered as internal keys are (user key
/// ascending, trailer descending).
struct Probe<'a> {
    prefix: u64,
    key: &'a [u8],
    trailer: u64,
}

/// Where an iterator stands: a node of a particular list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pos {
    list: u64,
    node: NonNull<Header>,
}

// SAFETY: a `Pos` is only dereferenced through `SkipList` methods, which check that it
// belongs to that list (whose nodes are immutable and live as long as it does); the
// pointer itself is plain data.
#[allow(unsafe_code)]
unsafe impl Send for Pos {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for Pos {}

/// Bump allocator over chunks the list owns; freed all at once when the list drops.
struct Arena {
    chunks: Vec<(NonNull<u8>, Layout)>,
    /// Next free byte of the current chunk, and how many bytes remain after it.
    cursor: *mut u8,
    remaining: usize,
    chunk_bytes: usize,
}

impl Arena {
    fn new(chunk_bytes: usize) -> Self {
        Arena {
            chunks: Vec::new(),
            cursor: ptr::null_mut(),
            remaining: 0,
            chunk_bytes,
        }
    }

    /// A fresh allocation of `size` bytes (a multiple of 8), 8-byte aligned. Requests
    /// over a quarter chunk get an allocation of their own, so a large value wastes no
    /// chunk space.
    fn allocate(&mut self, size: usize) -> NonNull<u8> {
        debug_assert_eq!(size % 8, 0);
        if size > self.chunk_bytes / 4 {
            return self.new_chunk(size);
        }
        if self.remaining < size {
            self.cursor = self.new_chunk(self.chunk_bytes).as_ptr();
            self.remaining = self.chunk_bytes;
        }
        let p = self.cursor;
        // SAFETY: `size <= remaining`, so `p + size` stays inside (or one past) the
        // current chunk.
        #[allow(unsafe_code)]
        unsafe {
            self.cursor = p.add(size);
        }
        self.remaining -= size;
        NonNull::new(p).expect("chunk pointers are non-null")
    }

    fn new_chunk(&mut self, size: usize) -> NonNull<u8> {
        let layout = Layout::from_size_align(size.max(8), 8).expect("chunk layout");
        // SAFETY: the layout has a non-zero size.
        #[allow(unsafe_code)]
        let p = unsafe { alloc(layout) };
        let Some(p) = NonNull::new(p) else {
            handle_alloc_error(layout)
        };
        self.chunks.push((p, layout));
        p
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for (p, layout) in self.chunks.drain(..) {
            // SAFETY: allocated by `new_chunk` with this layout, freed once.
            #[allow(unsafe_code)]
            unsafe {
                dealloc(p.as_ptr(), layout);
            }
        }
    }
}

/// Bits of a point-index slot that hold the node pointer; the bits above hold a tag
/// from the key's hash. Slot value 0 means empty.
const SLOT_PTR_BITS: u32 = 48;
const SLOT_PTR_MASK: u64 = (1 << SLOT_PTR_BITS) - 1;

/// One generation of the point index: linear probing over a power-of-two number of
/// slots, at most half of them used.
struct Table {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

impl Table {
    /// A table of `slots` (a power of two) empty slots. The memory comes zeroed from the
    /// allocator, so pages of a large table are only touched as keys land on them.
    fn new(slots: usize) -> Table {
        debug_assert!(slots.is_power_of_two());
        let layout = Layout::array::<AtomicU64>(slots).expect("point index layout");
        // SAFETY: the layout has a non-zero size (slots >= 1); all-zero bytes are a valid
        // `AtomicU64`; the allocation has exactly the layout of a `[AtomicU64; slots]`, so
        // the box frees it with the layout it was allocated with.
        #[allow(unsafe_code)]
        let slots_box = unsafe {
            let p = alloc_zeroed(layout).cast::<AtomicU64>();
            if p.is_null() {
                handle_alloc_error(layout);
            }
            Box::from_raw(ptr::slice_from_raw_parts_mut(p, slots))
        };
        Table {
            slots: slots_box,
            mask: slots - 1,
        }
    }
}

/// What the point index knows about a user key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Newest {
    /// No version of the key is in the list.
    Absent,
    /// The key's newest version.
    Node(Pos),
    /// The list has no point index: search it.
    Unknown,
}

/// State only the writer touches.
struct Writer {
    arena: Arena,
    rng: u64,
    /// Every point-index table made, the current one last (see the module documentation).
    tables: Vec<Arc<Table>>,
    /// Used slots of the current table.
    indexed: usize,
    /// Nodes written but not linked yet, in insert order.
    unlinked: Vec<NonNull<Header>>,
}

/// State only the linker touches.
struct Linker {
    /// Predecessors at each level of the last linked key (or that node itself below its
    /// height): linking a larger key starts its search there (a finger search), so
    /// ascending links (every sorted batch) cost the logarithm of the distance between
    /// neighbours rather than of the list's length.
    splice: [NonNull<Header>; MAX_HEIGHT],
    last: Option<NonNull<Header>>,
    /// The batch being linked; its allocation goes back to the writer for the next one.
    batch: Vec<NonNull<Header>>,
    /// Sort keys of the batch.
    keyed: Vec<(u64, NonNull<Header>)>,
}

/// See the module documentation.
pub(crate) struct SkipList {
    id: u64,
    head: NonNull<Header>,
    /// Height of the tallest tower linked so far.
    height: AtomicUsize,
    /// Nodes inserted (linked or not).
    len: AtomicUsize,
    /// Nodes linked; `len` once the linker caught up.
    linked: AtomicUsize,
    /// Set by the first `seek` or `first`: someone reads this list in order.
    sought: AtomicBool,
    /// Bytes of all nodes (the head excluded).
    node_bytes: AtomicUsize,
    writer: Mutex<Writer>,
    /// Taken before `writer` when both are held.
    linker: Mutex<Linker>,
    /// The current point-index table (null without an index); owned by `writer.tables`.
    index: AtomicPtr<Table>,
    /// Set for good if a node pointer did not fit in a slot: lookups search the list.
    index_off: AtomicBool,
    /// The hash of user keys the point index is built with.
    hasher: fn(&[u8]) -> u64,
}

// SAFETY: the list's nodes are immutable after publication except for their atomic next
// and older pointers; the arena and writer-side pointers are only touched under the
// writer mutex, the linker's under the linker mutex; readers only follow published links
// and slots. Nothing is tied to a thread.
#[allow(unsafe_code)]
unsafe impl Send for SkipList {}
// SAFETY: as for `Send`: shared access is atomics and immutable bytes.
#[allow(unsafe_code)]
unsafe impl Sync for SkipList {}

/// Distinguishes lists, so a [`Pos`] is only ever used with the list that made it.
static NEXT_LIST_ID: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for SkipList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkipList")
            .field("len", &self.len())
            .field("linked", &self.linked.load(Ordering::Relaxed))
            .field("node_bytes", &self.node_bytes())
            .finish()
    }
}

/// Size of a node with a tower of `height` links and the given key and value lengths,
/// rounded up to 8 bytes.
fn node_size(height: usize, key_len: usize, value_len: usize) -> usize {
    (height * LINK_BYTES + HEADER_BYTES + key_len + 8 + value_len).next_multiple_of(8)
}

// Node accessors. Every one takes a pointer to the header of a live, initialised node of
// a list the caller holds a reference to.
#[allow(unsafe_code)]
impl SkipList {
    /// Link `level` of `node`'s tower.
    ///
    /// SAFETY (callers): `node` is a node of `self` (or its head) with a tower taller
    /// than `level`.
    #[inline]
    unsafe fn link(&self, node: NonNull<Header>, level: usize) -> &AtomicPtr<Header> {
        // SAFETY: the tower lies just below the header, `level < height` entries deep,
        // 8-byte aligned like the node; AtomicPtr has the layout of a pointer; the node
        // lives as long as the list.
        unsafe {
            &*(node
                .as_ptr()
                .cast::<u8>()
                .sub((level + 1) * LINK_BYTES)
                .cast::<AtomicPtr<Header>>())
        }
    }

    #[inline]
    fn next(&self, node: NonNull<Header>, level: usize) -> Option<NonNull<Header>> {
        // SAFETY: callers pass nodes of this list reached through `level` or higher (or
        // the head, whose tower is full height), so the link exists.
        NonNull::new(unsafe { self.link(node, level) }.load(Ordering::Acquire))
    }

    #[inline]
    fn header(&self, node: NonNull<Header>) -> &Header {
        // SAFETY: nodes of this list are initialised before publication and immutable.
        unsafe { node.as_ref() }
    }

    /// The node's encoded internal key (`user key ++ trailer LE`).
    #[inline]
    fn ikey(&self, node: NonNull<Header>) -> &[u8] {
        let h = self.header(node);
        // SAFETY: the key bytes follow the header, written before publication.
        unsafe {
            std::slice::from_raw_parts(
                node.as_ptr().cast::<u8>().add(HEADER_BYTES),
                h.key_len() + 8,
            )
        }
    }

    /// The next older version of `node`'s key, per its `older` link.
    #[inline]
    fn older_node(&self, node: NonNull<Header>) -> Option<NonNull<Header>> {
        NonNull::new(self.header(node).older.load(Ordering::Acquire))
    }

    /// Starts loading the node a search goes to if it descends from `x` at `level`, while
    /// it still compares `x`'s successor at `level` (a cache miss, usually): the two
    /// misses overlap instead of following one another. `x` itself is in cache, so its
    /// link costs nothing to read.
    #[inline]
    fn prefetch_below(&self, x: NonNull<Header>, level: usize) {
        if level == 0 {
            return;
        }
        if let Some(below) = self.next(x, level - 1) {
            prefetch(below);
        }
    }

    /// The node's user key (its internal key without the trailer).
    #[inline]
    fn user_key(&self, node: NonNull<Header>) -> &[u8] {
        let ikey = self.ikey(node);
        &ikey[..ikey.len() - 8]
    }

    #[inline]
    fn trailer(&self, node: NonNull<Header>) -> u64 {
        let ikey = self.ikey(node);
        u64::from_le_bytes(ikey[ikey.len() - 8..].try_into().expect("8-byte trailer"))
    }

    /// The current point-index table, if the list has one in use.
    #[inline]
    fn index_table(&self) -> Option<&Table> {
        if self.index_off.load(Ordering::Acquire) {
            return None;
        }
        let table = self.index.load(Ordering::Acquire);
        // SAFETY: a non-null `index` points at a table `writer.tables` holds a reference
        // to until the list drops (so it is neither moved nor freed while `self` is
        // borrowed); it is only accessed through shared references, its slots atomics.
        (!table.is_null()).then(|| unsafe { &*table })
    }

    /// The node a non-empty point-index slot names.
    #[inline]
    fn slot_node(slot: u64) -> NonNull<Header> {
        // The pointer's provenance was exposed when the slot was written (`index_node`).
        NonNull::new(ptr::with_exposed_provenance_mut::<Header>(
            (slot & SLOT_PTR_MASK) as usize,
        ))
        .expect("non-empty slots hold node pointers")
    }

    #[inline]
    fn value(&self, node: NonNull<Header>) -> &[u8] {
        let h = self.header(node);
        // SAFETY: the value bytes follow the internal key, written before publication.
        unsafe {
            std::slice::from_raw_parts(
                node.as_ptr()
                    .cast::<u8>()
                    .add(HEADER_BYTES + h.key_len() + 8),
                h.value_len as usize,
            )
        }
    }
}

impl SkipList {
    /// An empty list allocating chunks of `chunk_bytes` (at least 4 KiB), without a
    /// point index.
    pub(crate) fn new(chunk_bytes: usize) -> Self {
        Self::build(chunk_bytes, None, |_| 0)
    }

    /// An empty list with a point index of (initially) `slots` slots (rounded up to a
    /// power of two; it doubles when half full), keyed by `hasher` of the user key.
    pub(crate) fn with_point_index(
        chunk_bytes: usize,
        slots: usize,
        hasher: fn(&[u8]) -> u64,
    ) -> Self {
        Self::build(
            chunk_bytes,
            Some(Table::new(slots.max(16).next_power_of_two())),
            hasher,
        )
    }

    fn build(chunk_bytes: usize, table: Option<Table>, hasher: fn(&[u8]) -> u64) -> Self {
        let mut arena = Arena::new(chunk_bytes.max(4096).next_multiple_of(8));
        let head = Self::write_node(&mut arena, MAX_HEIGHT, &[], 0, &[], &[None; MAX_HEIGHT]);
        let tables: Vec<Arc<Table>> = table.into_iter().map(Arc::new).collect();
        let index = tables
            .last()
            .map_or(ptr::null_mut(), |t| Arc::as_ptr(t).cast_mut());
        SkipList {
            id: NEXT_LIST_ID.fetch_add(1, Ordering::Relaxed),
            head,
            height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            linked: AtomicUsize::new(0),
            sought: AtomicBool::new(false),
            node_bytes: AtomicUsize::new(0),
            writer: Mutex::new(Writer {
                arena,
                rng: 0x2545_F491_4F6C_DD1D,
                tables,
                indexed: 0,
                unlinked: Vec::new(),
            }),
            linker: Mutex::new(Linker {
                splice: [head; MAX_HEIGHT],
                last: None,
                batch: Vec::new(),
                keyed: Vec::new(),
            }),
            index: AtomicPtr::new(index),
            index_off: AtomicBool::new(false),
            hasher,
        }
    }

    /// Bytes of the point-index tables (all generations).
    pub(crate) fn index_bytes(&self) -> usize {
        self.writer
            .lock()
            .tables
            .iter()
            .map(|t| t.slots.len() * 8)
            .sum()
    }

    /// Entries inserted, linked or not.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a `seek` (or `first`) was ever made on this list.
    pub(crate) fn was_sought(&self) -> bool {
        self.sought.load(Ordering::Relaxed)
    }

    /// Records that a reader needs the list's order (once: no store after the first).
    fn mark_sought(&self) {
        if !self.sought.load(Ordering::Relaxed) {
            self.sought.store(true, Ordering::Relaxed);
        }
    }

    /// Entries inserted but not linked yet.
    pub(crate) fn unlinked(&self) -> usize {
        self.len()
            .saturating_sub(self.linked.load(Ordering::Relaxed))
    }

    /// Bytes taken by the entries' nodes (towers, keys, values, headers).
    pub(crate) fn node_bytes(&self) -> usize {
        self.node_bytes.load(Ordering::Relaxed)
    }

    /// Allocates and fully writes a node, its tower pointing at `next` (not yet linked
    /// anywhere, so no one else can see it).
    fn write_node(
        arena: &mut Arena,
        height: usize,
        key: &[u8],
        trailer: u64,
        value: &[u8],
        next: &[Option<NonNull<Header>>; MAX_HEIGHT],
    ) -> NonNull<Header> {
        let size = node_size(height, key.len(), value.len());
        let base = arena.allocate(size).as_ptr();
        let key_len = u32::try_from(key.len())
            .ok()
            .filter(|&n| n <= KEY_LEN_MASK)
            .expect("key length checked by the engine");
        let height_bits = u32::try_from(height).expect("height <= MAX_HEIGHT") << KEY_LEN_BITS;
        let value_len = u32::try_from(value.len()).expect("value length checked by the engine");
        // SAFETY: `base` is a fresh, exclusively owned, 8-aligned allocation of `size`
        // bytes, which holds the tower, header, key, trailer and value written here.
        #[allow(unsafe_code)]
        unsafe {
            let node = base.add(height * LINK_BYTES).cast::<Header>();
            for (level, n) in next.iter().take(height).enumerate() {
                let link = base.add((height - 1 - level) * LINK_BYTES);
                ptr::write(
                    link.cast::<AtomicPtr<Header>>(),
                    AtomicPtr::new(n.map_or(ptr::null_mut(), NonNull::as_ptr)),
                );
            }
            ptr::write(
                node,
                Header {
                    prefix: key_prefix(key),
                    key_len_height: key_len | height_bits,
                    value_len,
                    older: AtomicPtr::new(ptr::null_mut()),
                },
            );
            let bytes = node.cast::<u8>().add(HEADER_BYTES);
            ptr::copy_nonoverlapping(key.as_ptr(), bytes, key.len());
            ptr::copy_nonoverlapping(trailer.to_le_bytes().as_ptr(), bytes.add(key.len()), 8);
            ptr::copy_nonoverlapping(value.as_ptr(), bytes.add(key.len() + 8), value.len());
            NonNull::new_unchecked(node)
        }
    }

    /// How `node` orders against `probe` in internal-key order.
    #[inline]
    fn cmp(&self, node: NonNull<Header>, probe: &Probe<'_>) -> CmpOrdering {
        let h = self.header(node);
        if h.prefix != probe.prefix {
            return h.prefix.cmp(&probe.prefix);
        }
        let ikey = self.ikey(node);
        let (key, trailer) = ikey.split_at(ikey.len() - 8);
        cmp_keys(key, probe.key).then_with(|| {
            let t = u64::from_le_bytes(trailer.try_into().expect("8-byte trailer"));
            probe.trailer.cmp(&t)
        })
    }

    /// Inserts `(key, trailer) -> value`: writes the node, names it in the point index
    /// (if any) and leaves it for the next [`SkipList::seek`] to link. Internal keys are
    /// unique (every write has its own sequence number); a duplicate would be stored
    /// beside the first.
    pub(crate) fn insert(&self, key: &[u8], trailer: u64, value: &[u8]) {
        let mut w = self.writer.lock();
        let w = &mut *w;
        // The key's point-index slot is the likely cache miss of an insert (the arena's
        // tail is in cache): start loading it before the node is written.
        let hash = w.tables.last().map(|table| {
            let hash = (self.hasher)(key);
            prefetch_slot(&table.slots[hash as usize & table.mask]);
            hash
        });
        let height = random_height(&mut w.rng);
        let node = Self::write_node(
            &mut w.arena,
            height,
            key,
            trailer,
            value,
            &[None; MAX_HEIGHT],
        );
        if let Some(hash) = hash {
            self.index_node(w, node, key, hash, trailer);
        }
        w.unlinked.push(node);
        self.node_bytes
            .fetch_add(node_size(height, key.len(), value.len()), Ordering::Relaxed);
        // After the node is recorded: a reader that sees the new length finds it unlinked
        // or linked (`link_pending`).
        self.len.fetch_add(1, Ordering::Release);
    }

    /// Links every node inserted so far (see the module documentation). Readers call it
    /// through [`SkipList::seek`] (and, in tests, `first`); it returns at once when
    /// nothing is pending.
    pub(crate) fn link_pending(&self) {
        if self.linked.load(Ordering::Acquire) == self.len.load(Ordering::Acquire) {
            return;
        }
        let mut guard = self.linker.lock();
        let l = &mut *guard;
        {
            let mut w = self.writer.lock();
            // The writer keeps the previous batch's allocation for the next one.
            l.batch.clear();
            std::mem::swap(&mut w.unlinked, &mut l.batch);
        }
        if l.batch.is_empty() {
            // Another reader linked them while this one waited for the linker.
            return;
        }
        let mut batch = std::mem::take(&mut l.batch);
        self.sort_batch(&mut batch, &mut l.keyed);
        for &node in &batch {
            self.link_node(l, node);
        }
        self.linked.fetch_add(batch.len(), Ordering::Release);
        l.batch = batch;
    }

    /// Sorts `batch` in internal-key order. Each node gets an integer sort key, the 8
    /// key bytes after the prefix all keys of the batch share (zero-padded, big-endian:
    /// where two differ they order as their keys do), so that most comparisons read no
    /// node: the keys of one workload tend to share a long prefix (`key:0000…`, `user…`).
    fn sort_batch(&self, batch: &mut [NonNull<Header>], keyed: &mut Vec<(u64, NonNull<Header>)>) {
        let Some(&first) = batch.first() else {
            return;
        };
        let first_key = self.user_key(first);
        let mut shared = first_key.len();
        for &node in batch.iter() {
            let key = self.user_key(node);
            shared = shared.min(key.len());
            shared = first_key[..shared]
                .iter()
                .zip(key)
                .position(|(a, b)| a != b)
                .unwrap_or(shared);
        }
        keyed.clear();
        keyed.extend(
            batch
                .iter()
                .map(|&node| (key_prefix(&self.user_key(node)[shared..]), node)),
        );
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| self.cmp_nodes(a.1, b.1)));
        for (slot, (_, node)) in batch.iter_mut().zip(keyed.iter()) {
            *slot = *node;
        }
        keyed.clear();
    }

    /// How two nodes order in internal-key order.
    fn cmp_nodes(&self, a: NonNull<Header>, b: NonNull<Header>) -> CmpOrdering {
        let key = self.user_key(b);
        self.cmp(
            a,
            &Probe {
                prefix: self.header(b).prefix,
                key,
                trailer: self.trailer(b),
            },
        )
    }

    /// Links `node` (written, not linked) at every level of its tower.
    fn link_node(&self, l: &mut Linker, node: NonNull<Header>) {
        let key = self.user_key(node);
        let probe = Probe {
            prefix: self.header(node).prefix,
            key,
            trailer: self.trailer(node),
        };
        let top = self.height.load(Ordering::Relaxed);
        let prev = if l
            .last
            .is_some_and(|last| self.cmp(last, &probe) == CmpOrdering::Less)
        {
            self.finger_search(l, &probe, top)
        } else {
            let mut prev = [self.head; MAX_HEIGHT];
            let mut x = self.head;
            for level in (0..top).rev() {
                while let Some(n) = self.next(x, level) {
                    self.prefetch_below(x, level);
                    if self.cmp(n, &probe) != CmpOrdering::Less {
                        break;
                    }
                    x = n;
                }
                prev[level] = x;
            }
            prev
        };
        let height = self.header(node).height();
        for (level, p) in prev.iter().enumerate().take(height) {
            // SAFETY: `node`'s tower has `height` links; `p` is a node of this list (or
            // the head) linked at `level`, or the head for levels above the old height.
            #[allow(unsafe_code)]
            unsafe {
                // Not reachable through links yet: the release store below publishes it.
                self.link(node, level).store(
                    self.link(*p, level).load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
            }
        }
        for (level, p) in prev.iter().enumerate().take(height) {
            // SAFETY: as above; readers reaching `node` through `level` find a link there.
            #[allow(unsafe_code)]
            unsafe { self.link(*p, level) }.store(node.as_ptr(), Ordering::Release);
        }
        if height > top {
            self.height.store(height, Ordering::Release);
        }
        l.splice = prev;
        l.splice[..height].fill(node);
        l.last = Some(node);
    }

    /// Points the point index's slot for `key` at `node` (just written), unless it names
    /// a newer version already, and threads `node` into the key's chain of versions.
    fn index_node(
        &self,
        w: &mut Writer,
        node: NonNull<Header>,
        key: &[u8],
        hash: u64,
        trailer: u64,
    ) {
        if w.tables.is_empty() || self.index_off.load(Ordering::Relaxed) {
            return;
        }
        let raw = node.as_ptr().expose_provenance() as u64;
        if raw >> SLOT_PTR_BITS != 0 {
            // Not on any platform we know of (user addresses take 47-48 bits), but then
            // the index cannot name this node: lookups fall back to the list for good.
            self.index_off.store(true, Ordering::Release);
            return;
        }
        let tag = hash >> SLOT_PTR_BITS;
        let value = (tag << SLOT_PTR_BITS) | raw;
        let table = w.tables.last().expect("checked non-empty");
        let mut i = hash as usize & table.mask;
        loop {
            let slot = table.slots[i].load(Ordering::Relaxed);
            if slot == 0 {
                break;
            }
            if slot >> SLOT_PTR_BITS == tag {
                let newest = Self::slot_node(slot);
                if self.user_key(newest) == key {
                    if self.trailer(newest) < trailer {
                        // Before the slot names `node`: a reader reaching it finds the
                        // chain complete.
                        self.header(node)
                            .older
                            .store(newest.as_ptr(), Ordering::Relaxed);
                        table.slots[i].store(value, Ordering::Release);
                    } else {
                        // An older version than the newest (never from the engine, whose
                        // sequences ascend): into the chain where it belongs.
                        let mut x = newest;
                        while let Some(o) =
                            self.older_node(x).filter(|&o| self.trailer(o) > trailer)
                        {
                            x = o;
                        }
                        let below = self.header(x).older.load(Ordering::Relaxed);
                        self.header(node).older.store(below, Ordering::Relaxed);
                        self.header(x).older.store(node.as_ptr(), Ordering::Release);
                    }
                    return;
                }
            }
            i = (i + 1) & table.mask;
        }
        // A key new to the index.
        if (w.indexed + 1) * 2 > table.slots.len() {
            self.grow_index(w);
            self.index_node(w, node, key, hash, trailer);
            return;
        }
        table.slots[i].store(value, Ordering::Release);
        w.indexed += 1;
    }

    /// Replaces the point index's table with one twice its size, holding the same slots.
    fn grow_index(&self, w: &mut Writer) {
        let old = w.tables.last().expect("an index to grow");
        let table = Table::new(old.slots.len() * 2);
        for slot in old.slots.iter().map(|s| s.load(Ordering::Relaxed)) {
            if slot == 0 {
                continue;
            }
            let hash = (self.hasher)(self.user_key(Self::slot_node(slot)));
            let mut i = hash as usize & table.mask;
            while table.slots[i].load(Ordering::Relaxed) != 0 {
                i = (i + 1) & table.mask;
            }
            table.slots[i].store(slot, Ordering::Relaxed);
        }
        let table = Arc::new(table);
        // The release store publishes the filled slots with the table.
        self.index
            .store(Arc::as_ptr(&table).cast_mut(), Ordering::Release);
        w.tables.push(table);
    }

    /// The newest version of user key `key` per the point index; `hash` is the list's
    /// hasher of `key`. A reader that loaded sequence `s` after the writer published it
    /// sees every version up to `s` here (the slot is stored before the insert returns),
    /// but may also see a newer one.
    pub(crate) fn newest(&self, key: &[u8], hash: u64) -> Newest {
        let Some(table) = self.index_table() else {
            return Newest::Unknown;
        };
        let tag = hash >> SLOT_PTR_BITS;
        let mut i = hash as usize & table.mask;
        loop {
            let slot = table.slots[i].load(Ordering::Acquire);
            if slot == 0 {
                return Newest::Absent;
            }
            if slot >> SLOT_PTR_BITS == tag {
                let node = Self::slot_node(slot);
                if self.user_key(node) == key {
                    return Newest::Node(Pos {
                        list: self.id,
                        node,
                    });
                }
            }
            i = (i + 1) & table.mask;
        }
    }

    /// Predecessors of `probe` at every level, for a probe after the last inserted node,
    /// found from that insert's predecessors (`splice`) instead of from the head: a
    /// finger search, costing the logarithm of the distance between the two keys rather
    /// than of the list's length. Ascending inserts (sequential keys, or a commit group
    /// the engine sorted) touch nodes the previous insert just touched.
    ///
    /// `splice[l]` precedes the last node's successor at level `l`, so it lies before
    /// the probe; it is the probe's predecessor at `l` unless its successor there lies
    /// before the probe too. Successors of the splice grow no smaller going up, so the
    /// lowest level `up` where the splice's successor is not before the probe has every
    /// level above it settled as well; below it, a search descends, starting at each
    /// level from the splice unless it already moved right of it.
    fn finger_search(
        &self,
        w: &Linker,
        probe: &Probe<'_>,
        top: usize,
    ) -> [NonNull<Header>; MAX_HEIGHT] {
        let mut prev = w.splice;
        let not_before = |level: usize| {
            self.next(w.splice[level], level)
                .is_none_or(|n| self.cmp(n, probe) != CmpOrdering::Less)
        };
        let up = (0..top).find(|&l| not_before(l)).unwrap_or(top);
        let mut moved: Option<NonNull<Header>> = None;
        for level in (0..up).rev() {
            let mut x = moved.unwrap_or(w.splice[level]);
            while let Some(n) = self.next(x, level) {
                self.prefetch_below(x, level);
                if self.cmp(n, probe) != CmpOrdering::Less {
                    break;
                }
                x = n;
                moved = Some(n);
            }
            prev[level] = x;
        }
        prev
    }

    /// The first node at or after `(key, trailer)` in internal-key order, among the nodes
    /// inserted before the call (it links them first) and any linked since.
    pub(crate) fn seek(&self, key: &[u8], trailer: u64) -> Option<Pos> {
        self.mark_sought();
        self.link_pending();
        let probe = Probe {
            prefix: key_prefix(key),
            key,
            trailer,
        };
        let mut x = self.head;
        // The first node seen not below the probe at the current level. It is often the
        // next one at the level under it too: no need to compare it again. At level 0 it
        // is the answer: it must not be loaded again, since a node inserted after `x`
        // meanwhile may sort below the probe.
        let mut not_below = None;
        for level in (0..self.height.load(Ordering::Acquire)).rev() {
            not_below = loop {
                let next = self.next(x, level);
                if next.is_some() && next != not_below {
                    self.prefetch_below(x, level);
                }
                match next {
                    Some(n) if Some(n) != not_below && self.cmp(n, &probe) == CmpOrdering::Less => {
                        x = n;
                    }
                    n => break n,
                }
            };
        }
        self.pos(not_below)
    }

    /// The first node (linking what is pending first, as [`SkipList::seek`] does).
    #[cfg(test)]
    pub(crate) fn first(&self) -> Option<Pos> {
        self.mark_sought();
        self.link_pending();
        self.pos(self.next(self.head, 0))
    }

    /// The next older version of the key at `pos` (lists with a point index only; `None`
    /// without one, or at the oldest version).
    #[inline]
    pub(crate) fn older(&self, pos: Pos) -> Option<Pos> {
        self.pos(self.older_node(self.own(pos)))
    }

    /// The node after `pos`.
    #[inline]
    pub(crate) fn after(&self, pos: Pos) -> Option<Pos> {
        self.pos(self.next(self.own(pos), 0))
    }

    /// The internal key and value at `pos`.
    #[inline]
    pub(crate) fn entry(&self, pos: Pos) -> (&[u8], &[u8]) {
        let node = self.own(pos);
        (self.ikey(node), self.value(node))
    }

    #[inline]
    fn pos(&self, node: Option<NonNull<Header>>) -> Option<Pos> {
        node.map(|node| Pos {
            list: self.id,
            node,
        })
    }

    /// The node `pos` names, which must belong to this list.
    #[inline]
    fn own(&self, pos: Pos) -> NonNull<Header> {
        assert_eq!(pos.list, self.id, "a position used with another skip list");
        pos.node
    }
}

/// A hint to start loading `node`'s header line into the cache. Never faults.
#[inline]
fn prefetch(node: NonNull<Header>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86_64 baseline; a prefetch is a hint that never
        // faults and has no effect the program can observe, whatever the address.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(node.as_ptr().cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = node;
}

/// As [`prefetch`], for a point-index slot.
#[inline]
fn prefetch_slot(slot: &AtomicU64) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: as in `prefetch`; the address is a live slot besides.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(ptr::from_ref(slot).cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// Byte order of two keys, compared 8 bytes at a time as big-endian integers (inline;
/// no `memcmp` call). Keys sharing a long prefix (`key:000000123456`, as redis-benchmark
/// writes them) tie on the header's 8-byte prefix, so this runs on most steps of their
/// searches.
#[inline]
fn cmp_keys(a: &[u8], b: &[u8]) -> CmpOrdering {
    let n = a.len().min(b.len());
    let (mut ca, mut cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        let x = u64::from_be_bytes(x.try_into().expect("8-byte chunk"));
        let y = u64::from_be_bytes(y.try_into().expect("8-byte chunk"));
        if x != y {
            return x.cmp(&y);
        }
    }
    ca.remainder()
        .cmp(cb.remainder())
        .then(a.len().cmp(&b.len()))
}

/// One step of xorshift64: the next state, which is also the value drawn.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// 1 with probability 3/4, 2 with 3/16, ... up to [`MAX_HEIGHT`] (xorshift64).
fn random_height(rng: &mut u64) -> usize {
    let mut height = 1;
    while height < MAX_HEIGHT {
        if !xorshift(rng).is_multiple_of(BRANCHING) {
            break;
        }
        height += 1;
    }
    height
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    fn internal_order(a: &(Vec<u8>, u64), b: &(Vec<u8>, u64)) -> CmpOrdering {
        a.0.cmp(&b.0).then(b.1.cmp(&a.1))
    }

    fn collect(list: &SkipList) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = list.first();
        while let Some(p) = pos {
            let (ikey, value) = list.entry(p);
            let (k, t) = ikey.split_at(ikey.len() - 8);
            out.push((
                k.to_vec(),
                u64::from_le_bytes(t.try_into().unwrap()),
                value.to_vec(),
            ));
            pos = list.after(p);
        }
        out
    }

    /// Random, ascending and descending inserts of keys with shared prefixes, empty keys,
    /// long keys and values (past a quarter chunk, so with allocations of their own):
    /// iteration yields internal order, and every seek lands where a sorted model says.
    #[test]
    fn iterates_and_seeks_in_internal_order() {
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut rand = move || xorshift(&mut rng);
        let list = SkipList::new(4096);
        // ((user key, trailer), value)
        type Entry = ((Vec<u8>, u64), Vec<u8>);
        let mut model: Vec<Entry> = Vec::new();
        let mut seq = 0u64;
        let mut add = |list: &SkipList, key: Vec<u8>, value: Vec<u8>, model: &mut Vec<_>| {
            seq += 1;
            let trailer = seq << 8 | 1;
            list.insert(&key, trailer, &value);
            model.push(((key, trailer), value));
        };
        let n = if cfg!(miri) { 60 } else { 3000 };
        for i in 0..n {
            let r = rand();
            let key = match i % 5 {
                0 => (r % 50).to_be_bytes()[5..].to_vec(), // shared zero prefix, repeats
                1 => vec![],
                2 => format!("k{:04}", i).into_bytes(), // ascending
                3 => {
                    let mut k = b"same-prefix-".to_vec();
                    k.extend_from_slice(&(r % 20).to_le_bytes());
                    k
                }
                _ => vec![(r >> 8) as u8; (r % 40) as usize],
            };
            let value_len = if i % 97 == 0 { 2000 } else { (r % 30) as usize };
            add(&list, key, vec![i as u8; value_len], &mut model);
        }
        for i in (0..n / 10).rev() {
            add(
                &list,
                format!("desc{i:05}").into_bytes(),
                vec![],
                &mut model,
            );
        }
        model.sort_by(|a, b| internal_order(&a.0, &b.0));
        let got = collect(&list);
        assert_eq!(got.len(), model.len());
        assert_eq!(list.len(), model.len());
        for (g, ((k, t), v)) in got.iter().zip(&model) {
            assert_eq!((&g.0, g.1, &g.2), (k, *t, v));
        }
        // Seeks to every present key, between keys, and past the end.
        let mut targets: Vec<(Vec<u8>, u64)> = model.iter().map(|m| m.0.clone()).collect();
        targets.extend(model.iter().map(|((k, t), _)| (k.clone(), t - 1)));
        targets.extend(model.iter().map(|((k, _), _)| (k.clone(), u64::MAX)));
        targets.push((vec![0xff; 50], 0));
        targets.push((vec![], u64::MAX));
        for (k, t) in targets.iter().step_by(if cfg!(miri) { 7 } else { 1 }) {
            let want = model
                .iter()
                .find(|m| internal_order(&m.0, &(k.clone(), *t)) != CmpOrdering::Less);
            let got = list.seek(k, *t).map(|p| list.entry(p).0.to_vec());
            let want = want.map(|((wk, wt), _)| {
                let mut e = wk.clone();
                e.extend_from_slice(&wt.to_le_bytes());
                e
            });
            assert_eq!(got, want, "seek {k:?}/{t}");
        }
        assert!(list.node_bytes() > 0 && !list.is_empty());
        assert!(SkipList::new(4096).is_empty());
    }

    #[test]
    #[should_panic(expected = "another skip list")]
    fn a_position_of_another_list_is_refused() {
        let a = SkipList::new(4096);
        let b = SkipList::new(4096);
        a.insert(b"k", 1, b"v");
        b.insert(b"k", 1, b"v");
        let p = a.first().unwrap();
        b.entry(p);
    }

    /// Readers walking and seeking while the writer inserts (and so linking what it
    /// inserted, concurrently with it) always see a sorted list whose entries are intact,
    /// a walk from the first entry at least every entry published before it started, and
    /// at the end every entry.
    #[test]
    fn readers_run_concurrently_with_the_writer() {
        let n: u64 = if cfg!(miri) { 200 } else { 20_000 };
        let list = Arc::new(SkipList::new(8192));
        let done = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (list, done, published) = (list.clone(), done.clone(), published.clone());
                std::thread::spawn(move || {
                    let mut rounds = 0;
                    while !done.load(Ordering::Acquire) || rounds == 0 {
                        rounds += 1;
                        let mut prev: Option<Vec<u8>> = None;
                        let at_least = published.load(Ordering::Acquire);
                        let mut seen = 0;
                        let mut pos = if r == 0 {
                            list.first()
                        } else {
                            list.seek(&(rounds * 7919 % n).to_be_bytes(), u64::MAX)
                        };
                        while let Some(p) = pos {
                            seen += 1;
                            let (k, v) = list.entry(p);
                            // Value = key bytes repeated: an intact node.
                            assert_eq!(v, &k[..8].repeat(2)[..]);
                            if let Some(prev) = &prev {
                                assert!(prev.as_slice() < k);
                            }
                            prev = Some(k.to_vec());
                            pos = list.after(p);
                        }
                        if r == 0 {
                            assert!(seen >= at_least, "walked {seen} of {at_least} entries");
                        }
                    }
                })
            })
            .collect();
        let mut model = BTreeMap::new();
        for i in 0..n {
            let k = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n).to_be_bytes();
            if model.insert(k, ()).is_none() {
                list.insert(&k, 0, &k.repeat(2));
                published.store(model.len(), Ordering::Release);
            }
        }
        done.store(true, Ordering::Release);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(list.len(), model.len());
        let keys: Vec<Vec<u8>> = collect(&list).into_iter().map(|e| e.0).collect();
        let want: Vec<Vec<u8>> = model.keys().map(|k| k.to_vec()).collect();
        assert_eq!(keys, want);
    }

    /// Every level, walked from the head, is in internal order and a subsequence of the
    /// level below it.
    fn check_levels(list: &SkipList) {
        list.link_pending();
        let mut below: Option<Vec<Vec<u8>>> = None;
        for level in 0..MAX_HEIGHT {
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut x = list.head;
            while let Some(n) = list.next(x, level) {
                keys.push(list.ikey(n).to_vec());
                x = n;
            }
            let entries: Vec<(Vec<u8>, u64)> = keys
                .iter()
                .map(|k| {
                    let (u, t) = k.split_at(k.len() - 8);
                    (u.to_vec(), u64::from_le_bytes(t.try_into().unwrap()))
                })
                .collect();
            for w in entries.windows(2) {
                assert_eq!(
                    internal_order(&w[0], &w[1]),
                    CmpOrdering::Less,
                    "level {level}"
                );
            }
            if let Some(below) = &below {
                let mut it = below.iter();
                for k in &keys {
                    assert!(it.any(|b| b == k), "level {level} skips a node below it");
                }
            }
            below = Some(keys);
        }
    }

    /// Batches of keys linked over a list already holding keys around them (each batch
    /// sorted, then linked by finger searches; batches start below the last key linked):
    /// every level stays ordered and complete, and seeks agree with a model.
    #[test]
    fn finger_search_inserts_keep_every_level_ordered() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || xorshift(&mut rng);
        let list = SkipList::new(4096);
        let mut model: BTreeMap<(Vec<u8>, std::cmp::Reverse<u64>), ()> = BTreeMap::new();
        let runs = if cfg!(miri) { 4 } else { 60 };
        let mut trailer = 0u64;
        for _ in 0..runs {
            for _ in 0..rand() % 40 {
                let key = format!("k{:05}", rand() % 3000).into_bytes();
                trailer += 1;
                list.insert(&key, trailer, b"");
                model.insert((key, std::cmp::Reverse(trailer)), ());
            }
            list.link_pending();
            assert_eq!(list.linked.load(Ordering::Relaxed), list.len());
        }
        check_levels(&list);
        let got: Vec<(Vec<u8>, u64)> = collect(&list).into_iter().map(|(k, t, _)| (k, t)).collect();
        let want: Vec<(Vec<u8>, u64)> = model.keys().map(|(k, t)| (k.clone(), t.0)).collect();
        assert_eq!(got, want);
        for probe in 0..300u64 {
            let key = format!("k{:05}", probe * 10).into_bytes();
            let got = list.seek(&key, u64::MAX).map(|p| list.entry(p).0.to_vec());
            let want = model
                .range((key.clone(), std::cmp::Reverse(u64::MAX))..)
                .next()
                .map(|((k, t), ())| [k.clone(), t.0.to_le_bytes().to_vec()].concat());
            assert_eq!(got, want);
        }
    }

    fn xxh(key: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(key)
    }

    /// Every key's first byte as its hash: long probe runs, equal tags, keys told apart
    /// only by comparing them.
    fn clumsy(key: &[u8]) -> u64 {
        key.first()
            .map_or(0, |&b| u64::from(b % 4) * 0x0101_0101_0101_0101)
    }

    fn newest_trailer(list: &SkipList, key: &[u8], hasher: fn(&[u8]) -> u64) -> Option<u64> {
        match list.newest(key, hasher(key)) {
            Newest::Absent => None,
            Newest::Node(p) => {
                let (ikey, _) = list.entry(p);
                let (k, t) = ikey.split_at(ikey.len() - 8);
                assert_eq!(k, key);
                Some(u64::from_le_bytes(t.try_into().unwrap()))
            }
            Newest::Unknown => panic!("the list has a point index"),
        }
    }

    /// The point index names each key's newest version (also when versions arrive out of
    /// order, as they never do from the engine), and nothing for keys never inserted,
    /// across several doublings, with a good hash and with one that collides constantly.
    #[test]
    fn point_index_names_the_newest_version() {
        let n: u64 = if cfg!(miri) { 60 } else { 2_000 };
        for hasher in [xxh as fn(&[u8]) -> u64, clumsy] {
            let list = SkipList::with_point_index(4096, 4, hasher);
            let mut model: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
            for i in 0..n * 3 {
                let key = format!("{}k{}", i % 7, (i * 31) % n).into_bytes();
                // Trailers mostly ascend; every fifth is older than what came before.
                let trailer = if i % 5 == 4 { i / 2 } else { i * 2 + 1 };
                list.insert(&key, trailer, b"v");
                model.entry(key).or_default().push(trailer);
            }
            for (key, trailers) in &mut model {
                trailers.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(newest_trailer(&list, key, hasher), Some(trailers[0]));
                // The chain of older versions holds every version, newest first.
                let Newest::Node(mut pos) = list.newest(key, hasher(key)) else {
                    unreachable!("found above")
                };
                let mut chain = Vec::new();
                loop {
                    let (ikey, _) = list.entry(pos);
                    chain.push(u64::from_le_bytes(
                        ikey[ikey.len() - 8..].try_into().unwrap(),
                    ));
                    match list.older(pos) {
                        Some(older) => pos = older,
                        None => break,
                    }
                }
                assert_eq!(&chain, trailers);
            }
            for i in 0..n {
                let key = format!("{}absent{i}", i % 7).into_bytes();
                assert_eq!(newest_trailer(&list, &key, hasher), None);
            }
            assert!(list.index_bytes() >= model.len() * 2 * 8);
        }
        let plain = SkipList::new(4096);
        plain.insert(b"k", 1, b"v");
        assert!(matches!(plain.newest(b"k", 0), Newest::Unknown));
    }

    /// Readers probing the point index while the writer inserts and doubles it find
    /// every key whose insert was published before their probe.
    #[test]
    fn point_index_lookups_run_concurrently_with_growth() {
        let n: u64 = if cfg!(miri) { 150 } else { 50_000 };
        let list = Arc::new(SkipList::with_point_index(8192, 16, xxh));
        let published = Arc::new(AtomicU64::new(0));
        let key = |i: u64| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes();
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (list, published) = (list.clone(), published.clone());
                std::thread::spawn(move || {
                    let mut probes = 0u64;
                    loop {
                        let upto = published.load(Ordering::Acquire);
                        if upto > 0 {
                            let i = (probes * 7 + r) % upto;
                            let k = key(i);
                            match list.newest(&k, xxh(&k)) {
                                Newest::Node(p) => {
                                    let (ikey, v) = list.entry(p);
                                    assert_eq!(&ikey[..8], &k[..]);
                                    assert_eq!(v, &k[..]);
                                }
                                other => panic!("published key {i} not found: {other:?}"),
                            }
                            probes += 1;
                        }
                        if upto == n {
                            return probes;
                        }
                    }
                })
            })
            .collect();
        for i in 0..n {
            let k = key(i);
            list.insert(&k, i, &k);
            published.store(i + 1, Ordering::Release);
        }
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }

    /// The chunked comparison orders exactly as slices do: prefixes of each other,
    /// differences before, at and after each 8-byte boundary, high bytes.
    #[test]
    fn key_comparison_is_byte_order() {
        let mut keys: Vec<Vec<u8>> = vec![vec![]];
        for len in [1, 7, 8, 9, 15, 16, 17, 24] {
            for fill in [0u8, 1, 0xff] {
                let base = vec![fill; len];
                keys.push(base.clone());
                for at in [0, len / 2, len - 1] {
                    for b in [0u8, 2, 0x80] {
                        let mut k = base.clone();
                        k[at] = b;
                        keys.push(k);
                    }
                }
            }
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(cmp_keys(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn heights_follow_the_branching_factor() {
        let mut rng = 99;
        let mut counts = [0usize; MAX_HEIGHT + 1];
        for _ in 0..100_000 {
            counts[random_height(&mut rng)] += 1;
        }
        // About 3/4 at height 1 and 3/16 at height 2.
        assert!((72_000..78_000).contains(&counts[1]), "{counts:?}");
        assert!((17_000..20_500).contains(&counts[2]), "{counts:?}");
        assert_eq!(counts[0], 0);
    }
}
