//! HTTP plumbing shared by the remote providers, so each provider keeps only its wire format
//! (request body, response parsing, error classification): a client that follows no redirects,
//! bounded retries with exponential backoff and jitter (backon) that honour a server-given delay,
//! the one timeout rule, and the structured call (send, classify a failure status, read the body).
//! Streams are opened here and read by [`super::sse`].
//!
//! Timeouts, the same for every provider: a structured call's attempt must finish as a whole
//! within [`Limits::timeout`]; a stream's response must start within it (its headers, then its
//! first event), and after that no more than [`Limits::idle_timeout`] may pass between events.

use super::LlmError;
use backon::{ExponentialBuilder, Retryable};
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::{Duration, Instant};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    /// The first backoff delay; it doubles each time (with jitter), up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry is started that would end after this much time since the first attempt.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            budget: Duration::from_secs(60),
        }
    }
}

/// The limits of one provider's calls (see the module doc for what each bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole-attempt limit for a structured call; time to the first event for a stream.
    pub timeout: Duration,
    /// Longest silence allowed between two stream events.
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
}

/// One failed attempt: the [`LlmError`] it ends with if it is the last, whether trying again may
/// help, and the delay the server asked for. The only error type of the provider layer besides
/// `LlmError` itself.
#[derive(Debug)]
pub struct AttemptError {
    pub error: LlmError,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

/// How a provider reads a failure status: `(status, headers, body)` to an attempt error.
pub type Classify = fn(u16, &HeaderMap, &str) -> AttemptError;

impl AttemptError {
    pub fn fatal(error: LlmError) -> Self {
        Self {
            error,
            retryable: false,
            retry_after: None,
        }
    }

    pub fn retry(error: LlmError, retry_after: Option<Duration>) -> Self {
        Self {
            error,
            retryable: true,
            retry_after,
        }
    }
}

/// The client for provider calls. It follows no redirects: an API that redirects is misconfigured,
/// and a redirect must not carry the key elsewhere.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// A transport error (connect, timeout, body) as an attempt failure.
fn transport(e: reqwest::Error) -> AttemptError {
    if e.is_timeout() {
        AttemptError::retry(LlmError::Timeout(e.to_string()), None)
    } else {
        AttemptError::retry(LlmError::Unavailable(e.to_string()), None)
    }
}

/// Sends `req`, waiting at most `limit` for the response to start; a timeout or transport error
/// is retryable, and a failure status is read by `classify`.
async fn send(
    req: reqwest::RequestBuilder,
    limit: Duration,
    classify: Classify,
) -> Result<reqwest::Response, AttemptError> {
    let res = match tokio::time::timeout(limit, req.send()).await {
        Err(_) => {
            return Err(AttemptError::retry(
                LlmError::Timeout(format!("no response within {limit:?}")),
                None,
            ))
        }
        Ok(Err(e)) => return Err(transport(e)),
        Ok(Ok(res)) => res,
    };
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    Err(classify(status, &headers, &text))
}

/// A structured call: each attempt is the request `request` builds, limited as a whole to
/// `limits.timeout`; its body is read as `T`. A body that breaks off or is not `T` is a transient
/// failure of that attempt.
pub async fn call_json<T: DeserializeOwned>(
    what: &'static str,
    limits: Limits,
    request: impl Fn() -> reqwest::RequestBuilder,
    classify: Classify,
) -> Result<T, LlmError> {
    with_retry(limits.retry, what, || async {
        let req = request().timeout(limits.timeout);
        let res = send(req, limits.timeout, classify).await?;
        let bytes = res.bytes().await.map_err(transport)?;
        serde_json::from_slice::<T>(&bytes).map_err(|e| {
            AttemptError::retry(
                LlmError::Unavailable(format!("unreadable response: {e}")),
                None,
            )
        })
    })
    .await
}

/// Opens a stream: the response to the request `request` builds, whose headers must arrive within
/// `limits.timeout`. Retries happen only here, before the response starts: once text has been
/// shown, a retry would duplicate it. Read the response with [`super::sse`].
pub async fn open_stream(
    what: &'static str,
    limits: Limits,
    request: impl Fn() -> reqwest::RequestBuilder,
    classify: Classify,
) -> Result<reqwest::Response, LlmError> {
    with_retry(limits.retry, what, || {
        send(request(), limits.timeout, classify)
    })
    .await
}

/// Runs `attempt` until it succeeds, fails for good, or the policy is spent.
pub async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    what: &'static str,
    attempt: F,
) -> Result<T, LlmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let started = Instant::now();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_attempts.saturating_sub(1))
        .with_jitter();
    attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|f: &AttemptError| {
            let wait = f.retry_after.unwrap_or(policy.base_delay);
            f.retryable && started.elapsed() + wait < policy.budget
        })
        // A delay the server asked for (Gemini's RetryInfo) replaces the computed one, as long as
        // the policy still allows another attempt.
        .adjust(|f: &AttemptError, next| next.map(|d| f.retry_after.unwrap_or(d)))
        .notify(|f: &AttemptError, wait: Duration| {
            tracing::warn!(call = what, error = %f.error, wait_ms = wait.as_millis() as u64, "model call failed; retrying");
        })
        .await
        .map_err(|f| f.error)
}

/// Parses a protobuf `Duration` as JSON renders it: `"43.7s"`, `"2s"`, `"0.5s"`.
pub fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_durations() {
        assert_eq!(
            parse_proto_duration("43.7s"),
            Some(Duration::from_millis(43_700))
        );
        assert_eq!(parse_proto_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_proto_duration("2"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let mut n = 0;
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..Default::default()
        };
        let r: Result<u32, _> = with_retry(policy, "test", || {
            n += 1;
            let k = n;
            async move {
                if k < 3 {
                    Err(AttemptError::retry(LlmError::Unavailable("x".into()), None))
                } else {
                    Ok(k)
                }
            }
        })
        .await;
        assert_eq!(r, Ok(3));
    }

    #[tokio::test]
    async fn stops_at_max_attempts_and_on_fatal_errors() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_attempts: 3,
            ..Default::default()
        };
        let mut n = 0;
        let r: Result<(), _> = with_retry(policy, "test", || {
            n += 1;
            async { Err(AttemptError::retry(LlmError::Unavailable("x".into()), None)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n, 3);

        let mut n = 0;
        let _: Result<(), _> = with_retry(policy, "test", || {
            n += 1;
            async { Err(AttemptError::fatal(LlmError::Rejected("x".into()))) }
        })
        .await;
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_server_delay_beyond_the_budget_is_not_waited_for() {
        let policy = RetryPolicy {
            budget: Duration::from_secs(5),
            ..Default::default()
        };
        let started = Instant::now();
        let mut n = 0;
        let _: Result<(), _> = with_retry(policy, "test", || {
            n += 1;
            async {
                Err(AttemptError::retry(
                    LlmError::RateLimited {
                        daily: false,
                        detail: "x".into(),
                    },
                    Some(Duration::from_secs(40)),
                ))
            }
        })
        .await;
        assert_eq!(n, 1);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
