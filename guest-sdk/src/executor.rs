//! Running `async` handlers: a single-threaded executor whose only source
//! of wake-ups is WASI pollables, which is all a component has.

use crate::Error;
use std::cell::RefCell;
use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use wasi::io::poll::Pollable;

thread_local! {
    /// What the pending futures wait for, each pollable once with the waker
    /// of its latest poll. An entry stays until its pollable fires (a
    /// future that is not woken is not polled again, and must not lose its
    /// wait). Weak: a pollable is a child of its stream or response, and a
    /// future dropped while the executor still held its pollable would make
    /// dropping the parent trap; dead entries are skipped.
    static WAITING: RefCell<Vec<(Weak<Pollable>, Waker)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `future` to completion, blocking in `wasi:io/poll` while it waits.
///
/// The futures of this crate ([`Body::chunk_async`](crate::Body::chunk_async),
/// [`client::send_async`](crate::client::send_async), [`ready`]) can be
/// awaited in it, [`join`]ed or raced; futures of other runtimes (tokio
/// timers, ...) cannot, and make it return [`Error::Stalled`]. A blocking
/// call inside an `async` handler (which runs its own `block_on`) works, but
/// holds up the handler's other futures until it returns.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, Error> {
    // A nested call must neither take nor clear what the outer one's
    // futures wait for.
    let outer = WAITING.take();
    let result = run(future);
    WAITING.set(outer);
    result
}

fn run<F: Future>(future: F) -> Result<F::Output, Error> {
    let mut future = pin!(future);
    let woken = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    let mut context = Context::from_waker(&waker);
    loop {
        woken.0.store(false, Ordering::Release);
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            WAITING.with_borrow_mut(Vec::clear);
            return Ok(output);
        }
        WAITING
            .with_borrow_mut(|waiting| waiting.retain(|(pollable, _)| pollable.strong_count() > 0));
        let waiting: Vec<(Rc<Pollable>, Waker)> = WAITING.with_borrow(|waiting| {
            waiting
                .iter()
                .filter_map(|(pollable, waker)| Some((pollable.upgrade()?, waker.clone())))
                .collect()
        });
        // Something woke a future while it was polled: it must be polled
        // again now, so only look (a zero timeout) at what else is ready.
        let woke_itself = woken.0.load(Ordering::Acquire);
        if waiting.is_empty() {
            if woke_itself {
                continue;
            }
            return Err(Error::Stalled);
        }
        let now = woke_itself.then(|| wasi::clocks::monotonic_clock::subscribe_duration(0));
        let mut pollables: Vec<&Pollable> =
            waiting.iter().map(|(pollable, _)| &**pollable).collect();
        pollables.extend(now.as_ref());
        let fired: Vec<&Rc<Pollable>> = wasi::io::poll::poll(&pollables)
            .into_iter()
            .filter_map(|index| waiting.get(index as usize))
            .map(|(pollable, waker)| {
                waker.wake_by_ref();
                pollable
            })
            .collect();
        WAITING.with_borrow_mut(|waiting| {
            waiting.retain(|(pollable, _)| {
                !fired
                    .iter()
                    .any(|done| std::ptr::eq(pollable.as_ptr(), Rc::as_ptr(done)))
            });
        });
    }
}

/// Runs `a` and `b` at the same time (in the same [`block_on`]), to both
/// outputs.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut a_out, mut b_out) = (None, None);
    std::future::poll_fn(move |context| {
        if a_out.is_none()
            && let Poll::Ready(output) = a.as_mut().poll(context)
        {
            a_out = Some(output);
        }
        if b_out.is_none()
            && let Poll::Ready(output) = b.as_mut().poll(context)
        {
            b_out = Some(output);
        }
        match (a_out.take(), b_out.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                (a_out, b_out) = (a, b);
                Poll::Pending
            }
        }
    })
    .await
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
        let waker = context.waker();
        WAITING.with_borrow_mut(|waiting| {
            let mine = Rc::as_ptr(&self.0);
            match waiting
                .iter_mut()
                .find(|(pollable, _)| pollable.as_ptr() == mine)
            {
                Some(entry) => entry.1.clone_from(waker),
                None => waiting.push((Rc::downgrade(&self.0), waker.clone())),
            }
        });
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
    fn join_waits_for_both() {
        let mut polls = 0;
        let second = std::future::poll_fn(|context| {
            polls += 1;
            if polls < 2 {
                context.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready("b")
            }
        });
        assert_eq!(block_on(join(async { 1 }, second)), Ok((1, "b")));
    }

    #[test]
    fn a_nested_block_on_leaves_the_outer_one_alone() {
        let outer = async { block_on(async { 2 }).unwrap() + 1 };
        assert_eq!(block_on(outer), Ok(3));
    }

    #[test]
    fn a_future_nothing_can_wake_is_reported_not_hung() {
        assert_eq!(block_on(std::future::pending::<()>()), Err(Error::Stalled));
    }
}
