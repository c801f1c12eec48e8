//! Running `async` handlers: a single-threaded executor whose only source
//! of wake-ups is WASI pollables, which is all a component has.

use crate::Error;
use std::cell::RefCell;
use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use wasi::io::poll::Pollable;

thread_local! {
    /// What the futures polled in this round wait for.
    static WAITING: RefCell<Vec<(Rc<Pollable>, Waker)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `future` to completion, blocking in `wasi:io/poll` while it waits.
///
/// The futures of this crate ([`Body::chunk_async`](crate::Body::chunk_async),
/// [`client::send_async`](crate::client::send_async), [`ready`]) can be
/// awaited in it, joined or raced; futures of other runtimes (tokio timers,
/// ...) cannot, and make it return [`Error::Stalled`].
pub fn block_on<F: Future>(future: F) -> Result<F::Output, Error> {
    let mut future = pin!(future);
    let woken = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            WAITING.with_borrow_mut(Vec::clear);
            return Ok(output);
        }
        let waiting = WAITING.take();
        if waiting.is_empty() {
            if woken.0.swap(false, Ordering::AcqRel) {
                continue;
            }
            return Err(Error::Stalled);
        }
        let pollables: Vec<&Pollable> = waiting.iter().map(|(pollable, _)| &**pollable).collect();
        for index in wasi::io::poll::poll(&pollables) {
            waiting[index as usize].1.wake_by_ref();
        }
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Waits until `pollable` is ready, letting other futures of the same
/// [`block_on`] run meanwhile.
pub async fn ready(pollable: Pollable) {
    Ready(Rc::new(pollable)).await
}

struct Ready(Rc<Pollable>);

impl Future for Ready {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.0.ready() {
            return Poll::Ready(());
        }
        let entry = (self.0.clone(), context.waker().clone());
        WAITING.with_borrow_mut(|waiting| waiting.push(entry));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_future_is_run_to_its_output() {
        assert_eq!(block_on(async { 6 * 7 }), Ok(42));
    }

    #[test]
    fn a_future_that_wakes_itself_is_polled_again() {
        let mut polls = 0;
        let yielding = std::future::poll_fn(|context| {
            polls += 1;
            if polls < 3 {
                context.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        assert_eq!(block_on(yielding), Ok(3));
    }

    #[test]
    fn a_future_nothing_can_wake_is_reported_not_hung() {
        assert_eq!(block_on(std::future::pending::<()>()), Err(Error::Stalled));
    }
}
