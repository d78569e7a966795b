//! Connections that hold a descriptor without asking anything are closed.
//!
//! hyper's header-read timeout only runs while an HTTP/1 connection is reading a request head;
//! before it, the HTTP/2 preface sniff (`opens_h2`) waits for the first bytes with no limit,
//! and HTTP/2 has no idle limit at all. So a socket that never sends a byte (plain, after the
//! TLS handshake, or after the HTTP/2 preface and SETTINGS) would stay open for ever, and a few
//! hundred of them exhaust the gateway's descriptors.
//!
//! One rule covers every protocol instead: a connection with no request in progress is closed
//! once it has been idle for the header timeout, counted from accept (the TLS handshake
//! included) or from the end of its last response. A request is in progress from the moment
//! hyper hands it to the service until its response body is written (or dropped). Closing is
//! graceful first — HTTP/1 closes an idle connection at once, HTTP/2 sends GOAWAY — and a peer
//! that is still there one more timeout later (an HTTP/2 peer that never acknowledges the
//! GOAWAY's ping) is dropped.

use super::header_timer::HeaderTimer;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::rt::Timer;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// What one connection is doing: how many requests are in progress, and since when it has
/// had none.
pub struct Activity {
    opened: Instant,
    active: AtomicU32,
    /// When the connection last became idle, in milliseconds after `opened`.
    idle_since_ms: AtomicU64,
}

impl Activity {
    /// A connection accepted at `opened`, idle from then on.
    pub fn new(opened: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            opened,
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// A request starts; it is in progress until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InProgress {
        self.active.fetch_add(1, Ordering::AcqRel);
        InProgress(self.clone())
    }

    /// Count the idle time from now.
    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.idle_since_ms.store(ms, Ordering::Release);
    }

    /// When the connection will have been idle for `timeout`, if it is idle now.
    fn idle_until(&self, timeout: Duration) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.opened + since + timeout)
    }

    /// Resolves once the connection has had no request in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration, timer: &HeaderTimer) {
        let mut sleep = timer.sleep(timeout);
        loop {
            let now = Instant::now();
            let at = match self.idle_until(timeout) {
                Some(at) if at <= now => return,
                Some(at) => at,
                // busy: look again a timeout later (a request ending meanwhile moves `at`)
                None => now + timeout,
            };
            timer.reset(&mut sleep, at);
            sleep.as_mut().await;
        }
    }
}

/// A request in progress on its connection.
pub struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        // the idle time is stamped before the count drops, so a reader that sees no request
        // in progress also sees when the last one ended
        self.0.touch();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in progress until it is written or dropped.
pub struct Tracked<B> {
    body: B,
    _in_progress: InProgress,
}

impl<B> Tracked<B> {
    pub fn new(body: B, in_progress: InProgress) -> Tracked<B> {
        Tracked {
            body,
            _in_progress: in_progress,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// `f`, unless the connection has had no request in progress for `timeout` or the gateway
/// stops first (`None` then).
pub async fn unless_idle<F: Future>(
    f: F,
    activity: &Activity,
    timeout: Duration,
    timer: &HeaderTimer,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<F::Output> {
    if *shutdown.borrow() {
        return None;
    }
    tokio::select! {
        biased;
        out = f => Some(out),
        _ = shutdown.changed() => None,
        _ = activity.idle_for(timeout, timer) => None,
    }
}

/// Drive a connection to its end: until it finishes, closing it gracefully when it has been
/// idle for `timeout` or when `shutdown` says the gateway is stopping, and dropping it when
/// it is still idle a timeout after its graceful close.
///
/// The connection is what wakes this task, request after request; the idle sleep and the
/// shutdown signal rarely do. So they are polled with a waker of their own ([`Woken`]) and
/// only after it fired, instead of on every wake-up as a `select!` polls every branch: a
/// wake-up for the connection costs one flag read here.
pub async fn drive<C, E>(
    mut conn: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    timeout: Duration,
    timer: &HeaderTimer,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let (mut closing, mut stopping) = (false, *shutdown.borrow());
    if stopping {
        graceful(conn.as_mut());
    }
    let woken = Arc::new(Woken::default());
    let watch_waker = Waker::from(woken.clone());
    // the task's waker as last handed to `woken`, to tell when it changes without a lock
    let mut task: Option<Waker> = None;
    let mut changed = std::pin::pin!(shutdown.changed());
    let mut idle = std::pin::pin!(activity.idle_for(timeout, timer));
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            *woken.task() = Some(cx.waker().clone());
            task = Some(cx.waker().clone());
        }
        if !woken.flag.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut watch = Context::from_waker(&watch_waker);
        if !stopping && changed.as_mut().poll(&mut watch).is_ready() {
            stopping = true;
            graceful(conn.as_mut());
        } else if idle.as_mut().poll(&mut watch).is_ready() {
            if closing {
                tracing::debug!("an idle connection did not close after a graceful close: dropped");
                return Poll::Ready(Ok(()));
            }
            closing = true;
            activity.touch();
            graceful(conn.as_mut());
            idle.set(activity.idle_for(timeout, timer));
        } else {
            return Poll::Pending;
        }
        // after a graceful close the connection is polled again, and the watch with it
        woken.flag.store(true, Ordering::Release);
    })
    .await
}

/// The waker of [`drive`]'s idle sleep and shutdown signal: it notes that one of them fired,
/// then wakes the connection's task.
struct Woken {
    /// Set by a wake; starts set so that the first poll registers the watch.
    flag: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Default for Woken {
    fn default() -> Woken {
        Woken {
            flag: AtomicBool::new(true),
            task: Mutex::new(None),
        }
    }
}

impl Woken {
    fn task(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        if let Some(task) = self.task().as_ref() {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_connection_is_idle_after_the_timeout_and_a_busy_one_is_not() {
        let timer = HeaderTimer::start(Duration::from_millis(5));
        let activity = Activity::new(Instant::now());
        let started = Instant::now();
        activity.idle_for(Duration::from_millis(50), &timer).await;
        assert!(started.elapsed() >= Duration::from_millis(50));

        let busy = activity.begin();
        let waited = tokio::time::timeout(
            Duration::from_millis(150),
            activity.idle_for(Duration::from_millis(20), &timer),
        )
        .await;
        assert!(
            waited.is_err(),
            "a connection with a request in progress is not idle"
        );
        let ended = Instant::now();
        drop(busy);
        activity.idle_for(Duration::from_millis(50), &timer).await;
        assert!(
            ended.elapsed() >= Duration::from_millis(45),
            "{:?}",
            ended.elapsed()
        );
    }
}
