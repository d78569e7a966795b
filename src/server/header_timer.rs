//! The clock behind hyper's header-read timeout: one registry of deadlines swept by one task,
//! instead of a tokio timer per request.
//!
//! hyper asks its `Timer` for a new sleep each time a connection starts waiting for a request
//! head, and drops it as soon as the head is parsed: on a keep-alive connection, once per
//! request. tokio's timer entry is a cache-line aligned allocation registered in the timer
//! wheel and removed again, which costs more than deciding a mock route. A header timeout
//! needs no such precision (the default is ten seconds), so here a sleep is a small box with
//! its deadline and a slot in a shared [`Slab`]; a sweeper task wakes the sleeps whose
//! deadline has passed every `tick`, and parks while no connection is waiting.
//!
//! A sleep therefore fires between its deadline and one tick after it. The same registry
//! keeps the other client-side deadlines, which need no more precision: each connection's
//! idle deadline (`idle.rs`) and the body timeout (`client_body.rs`). HTTP/2's own timers and
//! the backend side keep tokio's timer.

use hyper::rt::{Sleep, Timer};
use slab::Slab;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The deadlines of the connections waiting for a request head.
struct Registry {
    slots: Mutex<Slab<Slot>>,
    /// Wakes the sweeper when the first deadline is registered.
    not_empty: tokio::sync::Notify,
    /// How many sweeps have taken wakers, counted under the lock: a waker a sleep stored at
    /// count n is still in its slot while the count is n, so a poll can tell without the lock.
    sweeps: AtomicU64,
}

struct Slot {
    at: Instant,
    /// Taken when the sweeper wakes the sleep: a slot is only ever freed by its sleep's drop,
    /// so its key cannot be reused while the sleep holds it.
    waker: Option<Waker>,
}

impl Registry {
    fn slots(&self) -> MutexGuard<'_, Slab<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// hyper's [`Timer`] for the header-read timeout. Cloning shares the registry.
#[derive(Clone)]
pub struct HeaderTimer {
    registry: Arc<Registry>,
}

impl HeaderTimer {
    /// A timer whose sleeps fire at most `tick` late. Starts the sweeper on the current
    /// tokio runtime; it ends when the last clone of the timer is dropped.
    pub fn start(tick: Duration) -> HeaderTimer {
        let registry = Arc::new(Registry {
            slots: Mutex::new(Slab::new()),
            not_empty: tokio::sync::Notify::new(),
            sweeps: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&registry);
        tokio::spawn(async move {
            loop {
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                if registry.slots().is_empty() {
                    // woken by a registration, or every few ticks to notice the timer is gone
                    let notified = registry.not_empty.notified();
                    let _ = tokio::time::timeout(tick * 16, notified).await;
                    continue;
                }
                drop(registry);
                tokio::time::sleep(tick).await;
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                let now = Instant::now();
                let mut slots = registry.slots();
                let due: Vec<Waker> = slots
                    .iter_mut()
                    .filter(|(_, s)| s.at <= now)
                    .filter_map(|(_, s)| s.waker.take())
                    .collect();
                if !due.is_empty() {
                    registry.sweeps.fetch_add(1, Ordering::Release);
                }
                drop(slots);
                due.into_iter().for_each(Waker::wake);
            }
        });
        HeaderTimer { registry }
    }

    /// The tick for a header timeout: a tenth of it, at most 100 ms.
    pub fn tick_for(timeout: Duration) -> Duration {
        (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
    }
}

impl Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline {
            at: deadline,
            slot: None,
            registry: self.registry.clone(),
            stored: None,
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Deadline>() {
            Some(d) => d.get_mut().move_to(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// One connection's wait for a request head.
struct Deadline {
    at: Instant,
    /// The registry slot, taken on the first poll.
    slot: Option<usize>,
    registry: Arc<Registry>,
    /// The waker last stored in the slot, and the registry's sweep count then.
    stored: Option<(Waker, u64)>,
}

impl Deadline {
    fn move_to(&mut self, at: Instant) {
        self.at = at;
        if let Some(key) = self.slot {
            if let Some(slot) = self.registry.slots().get_mut(key) {
                slot.at = at;
            }
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.slot {
            // The first poll registers without reading the clock: the deadline was set a
            // moment ago, and a past one is found by the next sweep.
            None => {
                let mut slots = this.registry.slots();
                let first = slots.is_empty();
                this.slot = Some(slots.insert(Slot {
                    at: this.at,
                    waker: Some(cx.waker().clone()),
                }));
                let sweeps = this.registry.sweeps.load(Ordering::Acquire);
                this.stored = Some((cx.waker().clone(), sweeps));
                drop(slots);
                if first {
                    this.registry.not_empty.notify_one();
                }
                Poll::Pending
            }
            // Later polls (every wake-up of the connection's task) take neither the lock nor
            // the clock while no sweep has taken a waker since this one stored its own: the
            // sleep cannot have fired, as sleeps fire by the sweep. Otherwise the clock is read
            // only when the sweeper has taken this waker, i.e. found the deadline due.
            Some(key) => {
                if let Some((waker, sweeps)) = &this.stored {
                    let unswept = this.registry.sweeps.load(Ordering::Acquire) == *sweeps;
                    if unswept && waker.will_wake(cx.waker()) {
                        return Poll::Pending;
                    }
                }
                let mut slots = this.registry.slots();
                let Some(slot) = slots.get_mut(key) else {
                    return Poll::Pending;
                };
                match &mut slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    Some(w) => *w = cx.waker().clone(),
                    None if Instant::now() >= this.at => return Poll::Ready(()),
                    w => *w = Some(cx.waker().clone()),
                }
                let sweeps = this.registry.sweeps.load(Ordering::Acquire);
                this.stored = slot.waker.clone().map(|w| (w, sweeps));
                Poll::Pending
            }
        }
    }
}

impl Sleep for Deadline {}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(key) = self.slot {
            let mut slots = self.registry.slots();
            if slots.contains(key) {
                slots.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleep_fires_after_its_deadline_within_a_tick() {
        let timer = HeaderTimer::start(Duration::from_millis(10));
        let started = Instant::now();
        timer.sleep(Duration::from_millis(50)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn a_dropped_sleep_frees_its_slot_and_others_still_fire() {
        let timer = HeaderTimer::start(Duration::from_millis(5));
        let mut long = timer.sleep(Duration::from_secs(3600));
        // registered by a first poll
        assert!(futures_poll_once(long.as_mut()).await.is_pending());
        assert_eq!(timer.registry.slots().len(), 1);
        drop(long);
        assert_eq!(timer.registry.slots().len(), 0);
        timer.sleep(Duration::from_millis(20)).await;
        assert_eq!(timer.registry.slots().len(), 0);
    }

    #[tokio::test]
    async fn reset_moves_a_registered_deadline() {
        let timer = HeaderTimer::start(Duration::from_millis(5));
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        assert!(futures_poll_once(sleep.as_mut()).await.is_pending());
        timer.reset(&mut sleep, Instant::now() + Duration::from_millis(20));
        tokio::time::timeout(Duration::from_secs(5), sleep)
            .await
            .expect("the reset deadline fires");
    }

    #[tokio::test]
    async fn a_sleep_polled_on_every_wake_up_still_fires_once_swept() {
        let timer = HeaderTimer::start(Duration::from_millis(5));
        let mut sleep = timer.sleep(Duration::from_millis(30));
        let started = Instant::now();
        // polled again and again while pending, as a connection's idle sleep is on every
        // wake-up of its task: the lock-free answer must not hide the sweep
        while futures_poll_once(sleep.as_mut()).await.is_pending() {
            assert!(started.elapsed() < Duration::from_secs(5), "never fired");
            tokio::task::yield_now().await;
        }
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    /// Poll a future once with the task's own waker.
    async fn futures_poll_once<F: Future + ?Sized>(mut f: Pin<&mut F>) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
    }
}
