//! Running a plugin future to completion on the current thread, for the
//! load-time check (`Plugin::probe`), which runs off the async runtime.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Runs `future` to completion on this thread, parking it while the
/// future waits (a plugin's load-time instantiation yields at every epoch
/// tick and ends at its time limit).
pub(crate) fn block_on_local<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
