//! A guest's stdout and stderr, captured for the host log: the first
//! [`MAX_CAPTURE`] bytes of each call are kept, the rest counted.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of stdout / stderr kept per call (the rest is counted, not kept).
pub(crate) const MAX_CAPTURE: usize = 4096;

/// Captures a guest's stdout or stderr: keeps the first [`MAX_CAPTURE`]
/// bytes and counts the rest. Never fails and never blocks, so a chatty
/// guest is not broken by the capture.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn push(&self, bytes: &[u8]) {
        let mut captured = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = MAX_CAPTURE.saturating_sub(captured.kept.len());
        let keep = bytes.len().min(room);
        captured.kept.extend_from_slice(&bytes[..keep]);
        captured.dropped += bytes.len() - keep;
    }

    /// What was written since the last call, as text; `None` if nothing.
    pub(crate) fn take_text(&self) -> Option<String> {
        let mut captured = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kept = std::mem::take(&mut captured.kept);
        let dropped = std::mem::take(&mut captured.dropped);
        let text = String::from_utf8_lossy(&kept);
        let text = text.trim_end();
        match (text.is_empty(), dropped) {
            (true, 0) => None,
            (_, 0) => Some(text.to_owned()),
            _ => Some(format!("{text}… ({dropped} more bytes dropped)")),
        }
    }

    /// The last lines written (for a trap's message), without consuming them.
    pub(crate) fn tail(&self, max: usize) -> String {
        let captured = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&captured.kept);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        let joined = lines.join(" ");
        let start = joined.len().saturating_sub(max);
        let start = (start..=joined.len())
            .find(|&i| joined.is_char_boundary(i))
            .unwrap_or(joined.len());
        joined[start..].to_owned()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
