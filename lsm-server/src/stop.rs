//! Telling every connection to finish, at a cost per read that does not grow with the
//! number of connections.
//!
//! A connection waits for its next request and for shutdown at once, so the wait on the
//! shutdown signal is set up again at every read that has to wait. On a signal shared by
//! all connections (a watch channel, before) that meant registering with and leaving a
//! waiter list every connection shares: ~1.5 % of the server's CPU under
//! `redis-benchmark -P 1`, with the list's cache lines moving between worker threads.
//! Here each connection has a [`StopSignal`] of its own, registered in [`Stops`] while it
//! lives: waiting on it takes one uncontended lock; shutdown sets every live one.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// One connection's shutdown signal: set once, waited on many times.
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: AtomicBool,
    /// The task waiting, if one is.
    waker: Mutex<Option<Waker>>,
}

impl StopSignal {
    /// Sets the signal and wakes the task waiting on it.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let waker = self.waker.lock().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves once the signal is set (at once if it already is).
    pub fn stopped(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| self.poll_stopped(cx))
    }

    fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut waker = self.waker.lock();
        // Looked at again under the lock: `stop` sets the flag before it takes the waker,
        // so either it finds this task's waker or this finds the flag set.
        if self.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        match waker.as_ref() {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The stop signals of the live connections.
#[derive(Debug, Default)]
pub struct Stops {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    live: HashMap<u64, Arc<StopSignal>>,
}

/// A connection's signal, registered in its [`Stops`] until this is dropped.
#[derive(Debug)]
pub struct Registered {
    stops: Arc<Stops>,
    key: u64,
    signal: Arc<StopSignal>,
}

impl Stops {
    /// A new signal, set by [`Stops::stop_all`] while the returned value lives.
    pub fn register(self: &Arc<Self>) -> Registered {
        let signal = Arc::new(StopSignal::default());
        let mut r = self.inner.lock();
        r.next += 1;
        let key = r.next;
        r.live.insert(key, signal.clone());
        Registered {
            stops: self.clone(),
            key,
            signal,
        }
    }

    /// Sets the signal of every registered connection.
    pub fn stop_all(&self) {
        let live: Vec<Arc<StopSignal>> = self.inner.lock().live.values().cloned().collect();
        for s in live {
            s.stop();
        }
    }
}

impl std::ops::Deref for Registered {
    type Target = StopSignal;

    fn deref(&self) -> &StopSignal {
        &self.signal
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.stops.inner.lock().live.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_all_wakes_waiting_and_later_waits() {
        let stops = Arc::new(Stops::default());
        let (a, b) = (stops.register(), stops.register());
        assert_eq!(stops.inner.lock().live.len(), 2);
        // `a` waits on another task across many polls (as a connection's reads do).
        let waiter = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::select! {
                    () = a.stopped() => return true,
                    () = tokio::task::yield_now() => {}
                }
            }
            a.stopped().await;
            true
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "woke before the stop");
        stops.stop_all();
        let woke = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        assert!(
            matches!(woke, Ok(Ok(true))),
            "the waiting task was not woken"
        );
        // `b` was not waiting when the stop came: its next wait ends at once.
        let now = tokio::time::timeout(Duration::from_secs(10), b.stopped()).await;
        assert!(now.is_ok());
        drop(b);
        assert!(
            stops.inner.lock().live.is_empty(),
            "dropped signals stay registered"
        );
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polled by hand: a wait registers the task's waker (once, however often it is
    /// polled), the stop wakes it exactly once, and every later poll is ready.
    #[test]
    fn the_stop_wakes_the_registered_waker_once() {
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let signal = StopSignal::default();
        for _ in 0..3 {
            assert!(signal.poll_stopped(&mut cx).is_pending());
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        signal.stop();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the waiting task was not woken"
        );
        assert!(signal.poll_stopped(&mut cx).is_ready());
        signal.stop();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "woken again with nothing waiting"
        );
    }
}
