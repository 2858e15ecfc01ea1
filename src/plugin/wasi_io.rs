//! `wasi:io` (poll, error, streams) for synchronous calls made from any
//! thread, including a tokio worker.
//!
//! wasmtime-wasi's own sync bindings run their blocking operations through
//! `Handle::block_on` when a tokio runtime is current, which panics on a
//! runtime worker thread, and the scheduler calls filters and factories
//! from async tasks. The only streams a plugin can reach here (captured
//! stdout/stderr, a closed stdin) are always ready, so these bindings drive
//! the same async implementations with a small local executor instead.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams as async_streams;
use wasmtime_wasi::p2::bindings::sync::io::{error, poll, streams};
use wasmtime_wasi::p2::{DynPollable, StreamError, StreamResult};

use async_streams::{HostInputStream as AsyncIn, HostOutputStream as AsyncOut};
use streams::{InputStream, OutputStream};

/// How long a blocking I/O call may wait before it traps.
const MAX_BLOCK: Duration = Duration::from_secs(1);

/// `&mut ResourceTable`, seen through the synchronous `wasi:io` traits.
pub(crate) struct SyncIo<'a>(&'a mut ResourceTable);

struct SyncIoData;

impl HasData for SyncIoData {
    type Data<'a> = SyncIo<'a>;
}

/// Implemented by store data that keeps a [`ResourceTable`].
pub(crate) trait TableOf {
    fn table(&mut self) -> &mut ResourceTable;
}

/// Links `wasi:io/{error,poll,streams}`.
pub(crate) fn add_to_linker<T: TableOf + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    error::add_to_linker::<T, HasSelf<ResourceTable>>(linker, |s| s.table())?;
    poll::add_to_linker::<T, SyncIoData>(linker, |s| SyncIo(s.table()))?;
    streams::add_to_linker::<T, SyncIoData>(linker, |s| SyncIo(s.table()))?;
    Ok(())
}

/// Runs `future` to completion on this thread. The futures here are ready
/// at once; one that is not gets [`MAX_BLOCK`] before the call traps.
fn block_on<F: Future>(future: F) -> wasmtime::Result<F::Output> {
    let deadline = Instant::now() + MAX_BLOCK;
    poll_on_this_thread(future, Some(deadline))
        .ok_or_else(|| wasmtime::format_err!("blocked on I/O for more than {MAX_BLOCK:?}"))
}

/// Runs `future` to completion on this thread, parking it while the
/// future waits (for a plugin's load-time instantiation, which yields at
/// every epoch tick and ends at its time limit).
pub(crate) fn block_on_local<F: Future>(future: F) -> F::Output {
    poll_on_this_thread(future, None).expect("no deadline")
}

/// Polls `future` until it is ready, or `None` once `deadline` passes.
fn poll_on_this_thread<F: Future>(future: F, deadline: Option<Instant>) -> Option<F::Output> {
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
            return Some(output);
        }
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

fn block_on_stream<T>(future: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    block_on(future).map_err(StreamError::Trap)?
}

impl poll::Host for SyncIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        block_on(async_poll::Host::poll(self.0, pollables))?
    }
}

impl poll::HostPollable for SyncIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        block_on(async_poll::HostPollable::ready(self.0, pollable))?
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        block_on(async_poll::HostPollable::block(self.0, pollable))?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for SyncIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(async_streams::Host::convert_stream_error(self.0, err)?.into())
    }
}

impl streams::HostOutputStream for SyncIo<'_> {
    fn drop(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<()> {
        block_on(AsyncOut::drop(self.0, stream))?
    }

    fn check_write(&mut self, stream: Resource<OutputStream>) -> StreamResult<u64> {
        AsyncOut::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<OutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        AsyncOut::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        block_on_stream(AsyncOut::blocking_write_and_flush(self.0, stream, bytes))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        block_on_stream(AsyncOut::blocking_write_zeroes_and_flush(
            self.0, stream, len,
        ))
    }

    fn subscribe(
        &mut self,
        stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncOut::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<OutputStream>, len: u64) -> StreamResult<()> {
        AsyncOut::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<OutputStream>) -> StreamResult<()> {
        AsyncOut::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<OutputStream>) -> StreamResult<()> {
        block_on_stream(AsyncOut::blocking_flush(self.0, stream))
    }

    fn splice(
        &mut self,
        dst: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        AsyncOut::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        block_on_stream(AsyncOut::blocking_splice(self.0, dst, src, len))
    }
}

impl streams::HostInputStream for SyncIo<'_> {
    fn drop(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<()> {
        block_on(AsyncIn::drop(self.0, stream))?
    }

    fn read(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<Vec<u8>> {
        AsyncIn::read(self.0, stream, len)
    }

    fn blocking_read(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<Vec<u8>> {
        block_on_stream(AsyncIn::blocking_read(self.0, stream, len))
    }

    fn skip(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<u64> {
        AsyncIn::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<u64> {
        block_on_stream(AsyncIn::blocking_skip(self.0, stream, len))
    }

    fn subscribe(
        &mut self,
        stream: Resource<InputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncIn::subscribe(self.0, stream)
    }
}
