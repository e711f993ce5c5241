//! Limits applied before any handler runs: each route's request-body limit, and the number of
//! sign-in starts per client address. (The per-user limits on model calls are checked by the
//! server functions that call the model: `app::limits`.)
//!
//! **Body limits.** Every route has one, sized to its largest valid input with headroom; a body
//! over it is answered 413 before any handler sees it (by its `Content-Length`, or as soon as a
//! body without one passes the limit while being read). The endpoints that take a character
//! draft are sized from the domain's own bounds ([`CharacterDraft::MAX_CHARS`]), a chat message
//! from [`MessageText::MAX`]; everything else carries a few ids at most.

use crate::status::{error_response, wants_html};
use app::domain::{CharacterDraft, MessageText};
use app::error::AppError;
use app::infra::AppState;
use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use leptos::server_fn::ServerFn;
use std::net::SocketAddr;

/// Bytes a character of user text can take on the wire, worst case: JSON's `\uXXXX` escape (six
/// bytes), or four UTF-8 bytes each percent-encoded in a form (twelve).
const JSON_BYTES_PER_CHAR: usize = 6;
const FORM_BYTES_PER_CHAR: usize = 12;

/// The body limit of routes not named in [`body_limit_for`]: a few ids, a sign-in form.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// The request-body limit of `path`, in bytes: twice the largest valid input's worst-case
/// encoding, plus room for the field names.
pub fn body_limit_for(path: &str) -> usize {
    let draft = 2 * (CharacterDraft::MAX_CHARS * JSON_BYTES_PER_CHAR + 4096);
    if path.starts_with("/api/v1/characters/") && path.ends_with("/picture") {
        app::characters::pictures::MAX_UPLOAD_BYTES
    } else if path == app::characters::GenerateCharacter::PATH
        || path == app::characters::SaveCharacter::PATH
        || path == "/api/v1/characters"
        || path.starts_with("/api/v1/characters/")
        || path.starts_with("/api/v1/generate")
    {
        draft
    } else if path == "/api/v1/cards" {
        app::domain::card::MAX_CARD_BYTES
    } else if path == app::characters::UploadPicture::PATH {
        // The picture, and the multipart framing around it.
        app::characters::pictures::MAX_UPLOAD_BYTES + 16 * 1024
    } else if path == app::chat::ImportChat::PATH || path == "/api/v1/chats/import" {
        // The chat file, and the multipart framing around it.
        app::chat::transfer::MAX_CHAT_BYTES + 16 * 1024
    } else if path == app::characters::ImportCard::PATH {
        // The card file, and the multipart framing around it.
        app::domain::card::MAX_CARD_BYTES + 16 * 1024
    } else if path == app::twins::SaveTwin::PATH || path == "/api/v1/twin" {
        2 * (app::domain::TwinDraft::MAX_CHARS * JSON_BYTES_PER_CHAR + 4096)
    } else if path == app::twins::SuggestShades::PATH {
        2 * (app::domain::ShadeQuestionnaire::MAX_CHARS * JSON_BYTES_PER_CHAR + 4096)
    } else if path == app::chat::SendMessage::PATH
        || (path.starts_with("/api/v1/chats/") && path.ends_with("/messages"))
        || (path.starts_with("/api/v1/runs/") && path.ends_with("/turns"))
    {
        2 * (MessageText::MAX * FORM_BYTES_PER_CHAR + 1024)
    } else if path == app::chat::EditMessage::PATH {
        // An edited reply may be longer than what a user sends.
        2 * (app::domain::ReplyText::MAX * FORM_BYTES_PER_CHAR + 1024)
    } else if path.starts_with("/api/v1/chats/") && path.contains("/messages/") {
        2 * (app::domain::ReplyText::MAX * JSON_BYTES_PER_CHAR + 1024)
    } else {
        DEFAULT_BODY_LIMIT
    }
}

/// Whether `req` says it is `multipart/form-data` with a boundary.
fn has_multipart_boundary(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| multer::parse_boundary(ct).is_ok())
}

/// Refuses a body over its route's limit with 413. A body that states its length is judged by
/// it (the server reads no more than that); one that does not is read up to the limit first.
pub async fn body_limit(req: Request, next: Next) -> Response {
    let limit = body_limit_for(req.uri().path());
    // Every multipart server function (`decoders_answer_garbage_with_4xx` finds one left out).
    let multipart = [
        app::characters::ImportCard::PATH,
        app::characters::UploadPicture::PATH,
        app::chat::ImportChat::PATH,
    ];
    if multipart.contains(&req.uri().path()) && !has_multipart_boundary(&req) {
        // The framework's multipart decoder panics without a boundary: refuse it here, reading
        // what is left of the body first so the client sees the answer, not a reset connection.
        let err = AppError::Transport("send the file as multipart/form-data".into());
        let (parts, body) = req.into_parts();
        drain(body).await;
        let req = Request::from_parts(parts, Body::empty());
        return error_response(&err, req.uri().path(), wants_html(&req));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    let refused = |parts: axum::http::request::Parts, err: AppError| {
        if parts.uri.path().starts_with(crate::rest::BASE) {
            // The REST API answers every error as a problem.
            return crate::rest::problem_for(&err, &parts.headers, parts.uri.path());
        }
        let req = Request::from_parts(parts, Body::empty());
        error_response(&err, req.uri().path(), wants_html(&req))
    };
    match declared {
        Some(n) if n > limit as u64 => {
            drain(body).await;
            refused(parts, too_large(limit))
        }
        Some(_) => next.run(Request::from_parts(parts, body)).await,
        None => match read_within(body, limit).await {
            Ok(bytes) => {
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
            Err(Some(err)) => refused(parts, err),
            Err(None) => refused(
                parts,
                AppError::Transport("the request could not be read".into()),
            ),
        },
    }
}

fn too_large(limit: usize) -> AppError {
    AppError::TooLarge(format!(
        "The request is too large: this page accepts at most {} KB.",
        limit / 1024
    ))
}

/// How much of a refused body is still read (and thrown away), and for how long, so that a
/// client still sending it gets to read the 413 instead of a reset connection. Beyond these the
/// connection is simply closed.
const DRAIN_MAX: usize = 8 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a body of unstated length into memory, up to `limit` bytes. `Err(Some(413))` over it
/// (the rest drained), `Err(None)` if it could not be read.
async fn read_within(mut body: Body, limit: usize) -> Result<Bytes, Option<AppError>> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(None) };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body).await;
                return Err(Some(too_large(limit)));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards what is left of a refused body, within [`DRAIN_MAX`] and [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async move {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
}

/// Whether `path` starts a sign-in: a provider's `/auth/{provider}/start` or the local sign-in.
fn starts_sign_in(path: &str) -> bool {
    let provider_start = path
        .strip_prefix("/auth/")
        .and_then(|rest| rest.strip_suffix("/start"))
        .is_some_and(|p| !p.is_empty() && !p.contains('/'));
    provider_start || path == app::auth::LocalSignIn::PATH
}

/// Counts each sign-in start against its client address and refuses it (429, `Retry-After`)
/// over `LIMIT_SIGN_INS_PER_MINUTE`.
pub async fn sign_in_rate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !starts_sign_in(req.uri().path()) {
        return next.run(req).await;
    }
    let address = client_address(&req, state.config.limits.client_ip_header.as_deref());
    match app::limits::service::sign_in_attempt(&state.db, &state.config.limits, &address).await {
        Ok(()) => next.run(req).await,
        Err(err) => {
            tracing::warn!(%address, "sign-in refused: too many attempts");
            error_response(&err, req.uri().path(), wants_html(&req))
        }
    }
}

/// The client's address: from the header a trusted proxy sets (`CLIENT_IP_HEADER`; for
/// `X-Forwarded-For` its last entry, the one the proxy added), else the connection's peer.
pub fn client_address(req: &Request, header: Option<&str>) -> String {
    if let Some(name) = header {
        if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
            let last = v.rsplit(',').next().unwrap_or(v).trim();
            if !last.is_empty() {
                return last.to_string();
            }
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_starts_are_recognised() {
        assert!(starts_sign_in("/auth/github/start"));
        assert!(starts_sign_in("/api/auth/local"));
        assert!(!starts_sign_in("/auth/github/callback"));
        assert!(!starts_sign_in("/auth//start"));
        assert!(!starts_sign_in("/api/auth/me"));
    }

    #[test]
    fn drafts_and_messages_get_room_others_get_little() {
        let save = body_limit_for(app::characters::SaveCharacter::PATH);
        assert!(save >= CharacterDraft::MAX_CHARS * 6, "{save}");
        assert!(save < 1 << 20, "{save}");
        let send = body_limit_for(app::chat::SendMessage::PATH);
        assert!(send >= MessageText::MAX * 12 && send < save);
        let twin = body_limit_for(app::twins::SaveTwin::PATH);
        assert!(
            (app::domain::TwinDraft::MAX_CHARS * 6..1 << 20).contains(&twin),
            "{twin}"
        );
        let edit = body_limit_for(app::chat::EditMessage::PATH);
        assert!(
            (app::domain::ReplyText::MAX * 12..1 << 20).contains(&edit),
            "{edit}"
        );
        assert_eq!(body_limit_for("/api/chat/stop"), DEFAULT_BODY_LIMIT);
        assert_eq!(body_limit_for("/dashboard"), DEFAULT_BODY_LIMIT);
    }
}
