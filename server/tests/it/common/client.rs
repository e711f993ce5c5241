//! The typed test client. A test calls a server function by its argument struct — the one the
//! `#[server]` macro generates, e.g. `app.call(OpenChat { character_id })` — and gets its typed
//! result, encoded and decoded exactly as the browser does: the path and the input encoding come
//! from the server function itself, so no test writes an endpoint string.
//!
//! [`ReplyStream`] reads a streamed reply event by event, so a test can stop reading halfway (a
//! browser that goes away) or act between events (a Stop while the reply is being written).

use super::TestApp;
use app::chat::{ChatEvent, EventLines};
use app::error::AppError;
use futures::StreamExt;
use leptos::server_fn::codec::Json;
use leptos::server_fn::{ContentType, Http, ServerFn};
use serde::{de::DeserializeOwned, Serialize};

/// The input encoding of a server function's protocol.
pub trait InputEncoding {
    const CONTENT_TYPE: &'static str;
}

impl<I: ContentType, O> InputEncoding for Http<I, O> {
    const CONTENT_TYPE: &'static str = I::CONTENT_TYPE;
}

impl TestApp {
    /// Calls server function `S` and decodes its result: `Ok` on success, the server's
    /// [`AppError`] otherwise.
    pub async fn call<S>(&self, args: S) -> Result<S::Output, AppError>
    where
        S: ServerFn + Serialize,
        S::Protocol: InputEncoding,
        S::Output: DeserializeOwned,
    {
        super::result(self.send(args).await).await
    }

    /// Sends server function `S` and returns the raw response (for status, headers, streams).
    pub async fn send<S>(&self, args: S) -> reqwest::Response
    where
        S: ServerFn + Serialize,
        S::Protocol: InputEncoding,
    {
        self.send_with(&self.client, args).await
    }

    /// Sends server function `S` from another client (another browser, or one with no cookie
    /// jar and a cookie set by hand) to this server; returns the raw response.
    pub async fn send_with<S>(&self, client: &reqwest::Client, args: S) -> reqwest::Response
    where
        S: ServerFn + Serialize,
        S::Protocol: InputEncoding,
    {
        self.request(client, args)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} failed: {e}", S::PATH))
    }

    /// The request a hydrated page makes for server function `S`, built on `client` and not yet
    /// sent, for a test that adds headers of its own (a cookie, an origin).
    pub fn request<S>(&self, client: &reqwest::Client, args: S) -> reqwest::RequestBuilder
    where
        S: ServerFn + Serialize,
        S::Protocol: InputEncoding,
    {
        let req = client
            .post(self.url(S::PATH))
            .header("accept", "application/json");
        if <S::Protocol as InputEncoding>::CONTENT_TYPE == Json::CONTENT_TYPE {
            req.json(&args)
        } else {
            // What the browser client sends for a URL-encoded server function.
            req.header("content-type", "application/x-www-form-urlencoded")
                .body(serde_qs::to_string(&args).expect("arguments encode"))
        }
    }

    /// A card file sent to the import: multipart, field `card`. `accept` is `application/json`
    /// as the hydrated page sends it, `text/html` as a plain form post does.
    pub fn upload_request(
        &self,
        client: &reqwest::Client,
        accept: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_string());
        client
            .post(self.url(<app::characters::ImportCard as ServerFn>::PATH))
            .header("accept", accept)
            .multipart(reqwest::multipart::Form::new().part("card", part))
    }

    /// A picture upload for character `id` (`characters/picture`), as the character page's form
    /// sends it; `accept` says whether a page (`text/html`: a redirect back) or a script asks.
    pub fn picture_request(
        &self,
        client: &reqwest::Client,
        accept: &str,
        id: &str,
        bytes: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("picture.png");
        client
            .post(self.url(<app::characters::UploadPicture as ServerFn>::PATH))
            .header("accept", accept)
            .multipart(
                reqwest::multipart::Form::new()
                    .text("id", id.to_string())
                    .part("picture", part),
            )
    }

    /// A chat file brought in for the chats with `with` (`chat/import`), as the chats page's form
    /// sends it; `accept` says whether a page (`text/html`: a redirect) or a script asks.
    pub fn chat_import_request(
        &self,
        client: &reqwest::Client,
        accept: &str,
        with: &str,
        bytes: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("chat.jsonl");
        client
            .post(self.url(<app::chat::ImportChat as ServerFn>::PATH))
            .header("accept", accept)
            .multipart(
                reqwest::multipart::Form::new()
                    .text("with", with.to_string())
                    .part("chat", part),
            )
    }

    /// Sends server function `S` expecting it to be refused; returns the server's error. For
    /// streaming server functions (a chat message), whose success is a stream, not a value.
    pub async fn refusal<S>(&self, args: S) -> AppError
    where
        S: ServerFn + Serialize,
        S::Protocol: InputEncoding,
    {
        let res = self.send(args).await;
        let status = res.status();
        assert!(
            !status.is_success(),
            "{} was not refused ({status})",
            S::PATH
        );
        let body = res.text().await.expect("body");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("bad error body from {} ({status}) {body:?}: {e}", S::PATH))
    }

    /// Sends a streaming server function (a chat reply) and returns its event reader.
    pub async fn stream<S>(&self, args: S) -> ReplyStream
    where
        S: ServerFn + Serialize,
        S::Protocol: InputEncoding,
    {
        let res = self.send(args).await;
        assert!(
            res.status().is_success(),
            "{} answered {}",
            S::PATH,
            res.status()
        );
        ReplyStream::new(res)
    }
}

/// A reply stream read one event at a time.
pub struct ReplyStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    lines: EventLines,
    pending: std::collections::VecDeque<ChatEvent>,
    /// Network chunks received so far (a streamed reply arrives in many).
    pub chunks: usize,
}

impl ReplyStream {
    pub fn new(res: reqwest::Response) -> Self {
        Self {
            body: res.bytes_stream().boxed(),
            lines: EventLines::default(),
            pending: Default::default(),
            chunks: 0,
        }
    }

    /// The next event, or `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<ChatEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            let chunk = self.body.next().await?.expect("reply stream chunk");
            self.chunks += 1;
            let text = std::str::from_utf8(&chunk).expect("UTF-8 reply stream");
            for e in self.lines.push(text) {
                self.pending.push_back(e.expect("a well-formed event line"));
            }
        }
    }

    /// Reads events up to and including the first one `stop` accepts; returns them all.
    pub async fn until(&mut self, stop: impl Fn(&ChatEvent) -> bool) -> Vec<ChatEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            let done = stop(&e);
            out.push(e);
            if done {
                break;
            }
        }
        out
    }

    /// Every remaining event, to the end of the stream.
    pub async fn rest(&mut self) -> Vec<ChatEvent> {
        self.until(|_| false).await
    }
}
