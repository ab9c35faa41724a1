//! Write admission: what the commit leader must do before a commit group may enter the
//! memtable. A pure function of the engine's shape and the options, so every branch is
//! tested without threads; `Db` executes the answer (stall, delay, rotate, flush).

use crate::options::Options;

/// The facts the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteState {
    pub(crate) l0_files: usize,
    pub(crate) active_bytes: usize,
    pub(crate) sealed_memtables: usize,
    /// This commit group was already delayed once for L0 slowdown.
    pub(crate) already_slowed: bool,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Write now.
    Proceed,
    /// Delay this group by 1 ms once: L0 is filling up.
    Slowdown,
    /// Wait until compaction brings L0 under `l0_stop_trigger`.
    WaitForCompaction,
    /// Wait until the flush thread frees a sealed-memtable slot.
    WaitForFlush,
    /// No background threads: flush the oldest sealed memtable on this thread.
    FlushInline,
    /// Seal the full active memtable and start a fresh one.
    Rotate,
}

pub(crate) fn admit(s: &WriteState, opts: &Options) -> Admission {
    let bg = opts.background_threads;
    if bg && s.l0_files >= opts.l0_stop_trigger {
        return Admission::WaitForCompaction;
    }
    if bg && s.l0_files >= opts.l0_slowdown_trigger && !s.already_slowed {
        return Admission::Slowdown;
    }
    if s.active_bytes < opts.memtable_size_bytes {
        return Admission::Proceed;
    }
    if s.sealed_memtables >= opts.max_sealed_memtables {
        return if bg {
            Admission::WaitForFlush
        } else {
            Admission::FlushInline
        };
    }
    Admission::Rotate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(background_threads: bool) -> Options {
        Options {
            memtable_size_bytes: 1000,
            max_sealed_memtables: 2,
            l0_compaction_trigger: 2,
            l0_slowdown_trigger: 4,
            l0_stop_trigger: 6,
            background_threads,
            ..Options::default()
        }
    }

    fn state(
        l0_files: usize,
        active_bytes: usize,
        sealed_memtables: usize,
        already_slowed: bool,
    ) -> WriteState {
        WriteState {
            l0_files,
            active_bytes,
            sealed_memtables,
            already_slowed,
        }
    }

    #[test]
    fn each_branch() {
        let o = opts(true);
        assert_eq!(admit(&state(0, 10, 0, false), &o), Admission::Proceed);
        assert_eq!(admit(&state(3, 10, 0, false), &o), Admission::Proceed);
        assert_eq!(admit(&state(4, 10, 0, false), &o), Admission::Slowdown);
        assert_eq!(
            admit(&state(5, 10, 0, true), &o),
            Admission::Proceed,
            "slowed once per group"
        );
        assert_eq!(
            admit(&state(6, 10, 0, true), &o),
            Admission::WaitForCompaction
        );
        assert_eq!(admit(&state(0, 1000, 0, false), &o), Admission::Rotate);
        assert_eq!(admit(&state(0, 1000, 1, false), &o), Admission::Rotate);
        assert_eq!(
            admit(&state(0, 1000, 2, false), &o),
            Admission::WaitForFlush
        );
        assert_eq!(
            admit(&state(0, 999, 2, false), &o),
            Admission::Proceed,
            "a full queue alone does not stall"
        );
    }

    #[test]
    fn without_background_threads_nothing_waits() {
        let o = opts(false);
        assert_eq!(admit(&state(50, 10, 0, false), &o), Admission::Proceed);
        assert_eq!(
            admit(&state(50, 1000, 2, false), &o),
            Admission::FlushInline
        );
        assert_eq!(admit(&state(50, 1000, 0, false), &o), Admission::Rotate);
    }
}
