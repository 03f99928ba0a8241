//! The one body type the gateway answers with (every sandpen server's, `http_serve`), and a body that watches what passes through
//! it (for metering) and says when it is done.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

pub use crate::http_serve::{Body, full};

type OnData = Box<dyn FnMut(&[u8]) + Send + Sync>;
type OnEnd = Box<dyn FnOnce() + Send + Sync>;

/// Calls `on_data` with every chunk and `on_end` once, when the body ends or is dropped (a
/// client that went away included).
pub struct Watched<B> {
    inner: B,
    on_data: OnData,
    on_end: Option<OnEnd>,
}

impl<B> Watched<B> {
    pub fn new(
        inner: B,
        on_data: impl FnMut(&[u8]) + Send + Sync + 'static,
        on_end: impl FnOnce() + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            on_data: Box::new(on_data),
            on_end: Some(Box::new(on_end)),
        }
    }
}

impl<B> hyper::body::Body for Watched<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            (self.on_data)(data);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        if let Some(end) = self.on_end.take() {
            end();
        }
    }
}
