//! Limits on spending: every model call is paid for, so each user gets a number of calls per
//! minute, a number of replies and generations at once, and a number of model tokens per day;
//! anonymous sign-in starts get a number per client address per minute. Every refusal is an
//! [`AppError::RateLimited`](crate::error::AppError::RateLimited) — a 429 with `Retry-After` and a
//! sentence the page shows.
//!
//! The counters live in the database, not in process memory, so the limits hold for the whole
//! deployment when several servers share one database: requests per window are one atomic upsert
//! in `rate_limits`; calls in progress are rows in `generation_slots` kept alive by a heartbeat
//! (a server that dies stops counting within a minute); the daily budget is the sum of today's
//! tokens in `generations`. Server-only; nothing crosses the wire.

#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;
