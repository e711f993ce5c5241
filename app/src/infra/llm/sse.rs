//! Reading a streamed reply, the same way for every remote provider: a `text/event-stream`
//! response becomes a stream of event `data` payloads ([`events`]), and those become
//! [`ChatChunk`]s through the provider's [`ChatEvents`] — its wire format, and nothing else
//! ([`chat`]).
//!
//! Events are parsed by `eventsource-stream`, which handles LF and CRLF framing and events split
//! across or packed into network reads. The first event must arrive within the first-byte limit
//! (else [`LlmError::Timeout`]); after it, a silence longer than the idle limit, a broken
//! connection, or an end before the provider said the reply was finished is a
//! [`LlmError::CutOff`]. Dropping the stream drops the response, which closes the upstream request.

use super::http::Limits;
use super::{ChatChunk, LlmError};
use eventsource_stream::Eventsource;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

/// The `data` of each non-empty event of `res`, in order; it ends at the end of the response or
/// after its first error. The first event must come within `first_byte`, each later one within
/// `idle` of the one before.
pub fn events(
    res: reqwest::Response,
    first_byte: Duration,
    idle: Duration,
) -> BoxStream<'static, Result<String, LlmError>> {
    let events = res.bytes_stream().eventsource().boxed();
    // The state: the events, and whether none has come yet.
    futures::stream::unfold(Some((events, true)), move |state| async move {
        let (mut events, mut first) = state?;
        loop {
            let limit = if first { first_byte } else { idle };
            let error = match tokio::time::timeout(limit, events.next()).await {
                Ok(Some(Ok(event))) => {
                    first = false;
                    if event.data.trim().is_empty() {
                        continue;
                    }
                    return Some((Ok(event.data), Some((events, false))));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => LlmError::CutOff(format!("stream broke: {e}")),
                Err(_) if first => LlmError::Timeout(format!("no data within {limit:?}")),
                Err(_) => LlmError::CutOff(format!("no data for {idle:?}")),
            };
            return Some((Err(error), None));
        }
    })
    .boxed()
}

/// What a provider makes of its stream's events.
pub trait ChatEvents: Send + 'static {
    /// One event's `data`: the deltas it carries, in order, and the end (a `Done` or an error)
    /// if it ends the reply. Nothing is read after the first item that is not a delta.
    fn read(&mut self, data: &str) -> Vec<Result<ChatChunk, LlmError>>;

    /// The response ended without an event that ended the reply: the end, if what was read makes
    /// the reply complete; `None` if it was cut off.
    fn at_end(&mut self) -> Option<Result<ChatChunk, LlmError>>;
}

/// Where a chat stream is: opening the response, or reading its events.
enum Stage<R> {
    Open(BoxFuture<'static, Result<reqwest::Response, LlmError>>, R),
    Read {
        data: BoxStream<'static, Result<String, LlmError>>,
        reader: R,
        pending: VecDeque<Result<ChatChunk, LlmError>>,
    },
}

/// A chat stream: opens the response with `open` (see [`super::http::open_stream`]), then reads its
/// events with `reader` under `limits`. Nothing happens until the stream is polled; it ends after
/// its first item that is not a delta.
pub fn chat<R: ChatEvents>(
    open: impl Future<Output = Result<reqwest::Response, LlmError>> + Send + 'static,
    limits: Limits,
    reader: R,
) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
    let start = Stage::Open(Box::pin(open), reader);
    futures::stream::unfold(Some(start), move |stage| async move {
        let (mut data, mut reader, mut pending) = match stage? {
            Stage::Open(open, reader) => match open.await {
                Err(e) => return Some((Err(e), None)),
                Ok(res) => (
                    events(res, limits.timeout, limits.idle_timeout),
                    reader,
                    VecDeque::new(),
                ),
            },
            Stage::Read {
                data,
                reader,
                pending,
            } => (data, reader, pending),
        };
        loop {
            if let Some(item) = pending.pop_front() {
                let next = matches!(item, Ok(ChatChunk::Delta(_))).then_some(Stage::Read {
                    data,
                    reader,
                    pending,
                });
                return Some((item, next));
            }
            match data.next().await {
                Some(Ok(event)) => pending.extend(reader.read(&event)),
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let end = reader.at_end().unwrap_or_else(|| {
                        Err(LlmError::CutOff(
                            "stream ended without a finish reason".into(),
                        ))
                    });
                    return Some((end, None));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A one-request server: answers at once with the headers of an event stream, then writes
    /// each piece after its delay, then closes. Returns the response.
    async fn respond(pieces: &'static [(u64, &'static str)]) -> reqwest::Response {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            for (delay, text) in pieces {
                tokio::time::sleep(Duration::from_millis(*delay)).await;
                if socket.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        reqwest::get(format!("http://{addr}/")).await.unwrap()
    }

    const PIECES: &[(u64, &str)] = &[(300, "data: a\n\n"), (300, ": comment\n\ndata: b\n\n")];

    async fn read(first_byte: u64, idle: u64) -> Vec<Result<String, LlmError>> {
        events(
            respond(PIECES).await,
            Duration::from_millis(first_byte),
            Duration::from_millis(idle),
        )
        .collect()
        .await
    }

    #[tokio::test]
    async fn the_first_event_is_held_to_the_first_byte_limit() {
        let got = read(100, 1000).await;
        assert!(matches!(got[..], [Err(LlmError::Timeout(_))]), "{got:?}");
    }

    #[tokio::test]
    async fn later_events_are_held_to_the_idle_limit() {
        let got = read(1000, 100).await;
        assert!(
            matches!(&got[..], [Ok(a), Err(LlmError::CutOff(_))] if a == "a"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_within_its_limits_is_read_to_its_end() {
        let got = read(1000, 1000).await;
        assert_eq!(got, vec![Ok("a".to_string()), Ok("b".to_string())]);
    }
}
