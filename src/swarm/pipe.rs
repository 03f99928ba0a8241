//! Tars over HTTP without holding them whole, both ways and on both sides of the exchange: a
//! blocking packer writing into a body as it is sent, and a body read by a blocking unpacker
//! as it comes.

use std::io::Read;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

/// The pipe between a packer and the network.
const BUFFER: usize = 256 << 10;

/// Runs `pack` on a blocking thread, writing into the returned stream of bytes (a body); the
/// handle says how the packing ended. A dropped stream makes the packer's writes fail.
pub fn packed<T, F>(pack: F) -> (ReaderStream<DuplexStream>, JoinHandle<T>)
where
    F: FnOnce(SyncIoBridge<DuplexStream>) -> T + Send + 'static,
    T: Send + 'static,
{
    let (into, from) = tokio::io::duplex(BUFFER);
    let into = SyncIoBridge::new(into);
    (
        ReaderStream::new(from),
        tokio::task::spawn_blocking(move || pack(into)),
    )
}

/// A body as a reader for a blocking thread (made on the runtime): its bytes as they come, an
/// error of the body as an I/O error.
pub fn reader<B>(body: B) -> impl Read + Send + 'static
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = body.into_data_stream().map_err(std::io::Error::other);
    SyncIoBridge::new(StreamReader::new(body))
}
