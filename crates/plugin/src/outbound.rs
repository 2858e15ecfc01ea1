//! Outbound HTTP for plugins granted it (`wasi:http/outgoing-handler`):
//! every request is checked against the plugin's allowed origins, its
//! bodies capped and its time bounded, before wasmtime's client sends it.
//! What is refused fails inside the plugin with a `wasi:http` error code
//! it can read (`HTTP-request-denied`, `HTTP-request-body-size`,
//! `HTTP-response-body-size`, `HTTP-response-timeout`). Redirects are not
//! followed: a plugin that follows one sends a new request, checked again.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::grants::HttpGrant;

/// The `wasi:http` hooks of one call's store.
pub(crate) struct Outbound {
    pub(crate) plugin: Arc<str>,
    pub(crate) trigger: Arc<str>,
    /// `None`: no grant (such a component is refused at load; this is
    /// a second lock on the same door).
    pub(crate) grant: Option<Arc<HttpGrant>>,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let checked = self.check(&request);
        let grant = self.grant.clone();
        Box::new(async move {
            let grant = checked.and(grant.ok_or(Error::HttpRequestDenied))?;
            send(request, options, &grant).await
        })
    }
}

impl Outbound {
    /// Refuses a request to an origin not granted, or whose declared body
    /// is over the cap; logs why, naming the plugin and trigger.
    fn check(&self, request: &http::Request<WasiBody>) -> Result<(), Error> {
        let (plugin, trigger) = (&*self.plugin, &*self.trigger);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or("");
        let allowed = self
            .grant
            .as_ref()
            .is_some_and(|g| g.allows(scheme, host, uri.port_u16()));
        if !allowed {
            let origin = match uri.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            };
            tracing::warn!(plugin, trigger, %origin, "outbound HTTP request refused: the origin is not in `allowed_outbound_hosts` of the plugin's manifest");
            return Err(Error::HttpRequestDenied);
        }
        let max = self.grant.as_ref().map_or(0, |g| g.max_request_bytes);
        if request.body().size_hint().lower() > max {
            return Err(Error::HttpRequestBodySize(Some(max)));
        }
        Ok(())
    }
}

/// Sends an allowed request with wasmtime's client, within the grant's
/// time limit (the guest may ask for less) and body caps.
async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    grant: &HttpGrant,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let limit = grant.timeout;
    let clamp = |asked: Option<std::time::Duration>| Some(asked.map_or(limit, |a| a.min(limit)));
    let options = options.unwrap_or_default();
    let options = RequestOptions {
        connect_timeout: clamp(options.connect_timeout),
        first_byte_timeout: clamp(options.first_byte_timeout),
        between_bytes_timeout: clamp(options.between_bytes_timeout),
    };
    let request = request.map(|body| {
        Capped::new(body, grant.max_request_bytes, Error::HttpRequestBodySize).boxed_unsync()
    });
    let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
    let (response, io) = tokio::time::timeout(limit, sent)
        .await
        .map_err(|_| Error::HttpResponseTimeout)??;
    let max = grant.max_response_bytes;
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(Error::HttpResponseBodySize(declared));
    }
    let response = response.map(|body| {
        Capped::new(body.boxed_unsync(), max, Error::HttpResponseBodySize).boxed_unsync()
    });
    Ok((response, Box::new(io)))
}

/// A body that fails once more than `remaining` bytes went through.
struct Capped<B> {
    inner: B,
    remaining: u64,
    cap: u64,
    error: fn(Option<u64>) -> Error,
}

impl<B> Capped<B> {
    fn new(inner: B, cap: u64, error: fn(Option<u64>) -> Error) -> Self {
        Self {
            inner,
            remaining: cap,
            cap,
            error,
        }
    }
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.remaining {
                return Poll::Ready(Some(Err((self.error)(Some(self.cap)))));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn a_body_over_its_cap_fails() {
        let body = |n: usize| {
            Full::new(Bytes::from(vec![b'x'; n]))
                .map_err(|never| match never {})
                .boxed_unsync()
        };
        let capped = Capped::new(body(10), 10, Error::HttpResponseBodySize);
        assert_eq!(capped.collect().await.unwrap().to_bytes().len(), 10);
        let capped = Capped::new(body(11), 10, Error::HttpResponseBodySize);
        let error = capped.collect().await.unwrap_err();
        assert!(
            matches!(error, Error::HttpResponseBodySize(Some(10))),
            "{error:?}"
        );
    }
}
