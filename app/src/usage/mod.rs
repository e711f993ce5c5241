//! Usage analytics: one row in `generations` per model call (kind, provider, language, outcome,
//! time, tokens), written by the domains that call a model (characters, chat, play, twins,
//! matches) through [`store::record`], which also adds the call to two daily rollups — calls and
//! tokens per day, use, provider, language and outcome (`usage_daily`), and a latency histogram
//! per day, use and provider (`usage_latency`) — so the usage page reads at most a few thousand
//! rows whatever the number of calls.
//!
//! This module holds what crosses the wire (the [`UsageReport`] the usage page and the REST API
//! show) and the vocabulary both sides share: the uses a call counts under ([`UseGroup`]), the
//! latency buckets ([`LATENCY_BOUNDS_MS`]) and how a percentile is read from them ([`percentile`]).
//! [`service`] builds the report; [`store`] has every query on the three tables.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod calls;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;

#[cfg(feature = "ssr")]
use crate::infra::llm::{LlmError, Usage};

/// The periods the usage page offers, in days (the last day is today, UTC).
pub const PERIODS: [u16; 3] = [7, 30, 90];

/// The upper bounds of the latency buckets, in milliseconds: a call of `d` ms counts in the first
/// bucket whose bound is at least `d`, or in one more bucket past the last bound. Percentiles are
/// read from these buckets ([`percentile`]), so they are estimates within a bucket's width.
/// (The migration that made the rollups has the same bounds as SQL; a test keeps them equal.)
pub const LATENCY_BOUNDS_MS: [u32; 21] = [
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500, 10_000, 15_000,
    20_000, 30_000, 45_000, 60_000, 90_000, 120_000,
];
/// How many latency buckets there are: one per bound and one for longer calls.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The bucket a call of `ms` milliseconds counts in.
pub fn bucket_of(ms: i64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|&b| i64::from(b) < ms)
}

/// The `q`-quantile (0 < q ≤ 1) of the times counted in `hist` (one count per bucket), in
/// milliseconds: interpolated linearly inside the bucket it falls in (as Prometheus'
/// `histogram_quantile` does); the lower bound for the open last bucket. `None` when empty.
pub fn percentile(hist: &[u64], q: f64) -> Option<u32> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0);
    let mut before = 0u64;
    for (i, &n) in hist.iter().enumerate() {
        if n > 0 && (before + n) as f64 >= rank {
            let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_MS[i - 1] };
            let Some(&upper) = LATENCY_BOUNDS_MS.get(i) else {
                return Some(lower);
            };
            let within = (rank - before as f64) / n as f64;
            return Some(lower + (f64::from(upper - lower) * within).round() as u32);
        }
        before += n;
    }
    LATENCY_BOUNDS_MS.last().copied()
}

/// What a model call was for, as the usage page groups calls.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UseGroup {
    /// Writing a character or one of its sections.
    Character,
    /// Chat replies (with characters and with the twin).
    Chat,
    /// Play-mode scenes and story summaries.
    Play,
    /// Compatibility matches and their icebreakers.
    Match,
    /// The twin's Shades.
    Twin,
}

impl UseGroup {
    pub const ALL: [UseGroup; 5] = [
        UseGroup::Character,
        UseGroup::Chat,
        UseGroup::Play,
        UseGroup::Match,
        UseGroup::Twin,
    ];

    /// The group a recorded call kind (`character`, `section_repair`, `play_turn`, …) counts under.
    pub fn of(kind: &str) -> Self {
        let base = kind.strip_suffix("_repair").unwrap_or(kind);
        match base {
            "chat" | "chat_summary" => UseGroup::Chat,
            "play_turn" | "play_summary" => UseGroup::Play,
            "match" | "icebreaker" => UseGroup::Match,
            "shades" => UseGroup::Twin,
            // "character", "section", and anything older.
            _ => UseGroup::Character,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UseGroup::Character => "character",
            UseGroup::Chat => "chat",
            UseGroup::Play => "play",
            UseGroup::Match => "match",
            UseGroup::Twin => "twin",
        }
    }

    /// What the page calls it.
    pub fn label(self) -> &'static str {
        match self {
            UseGroup::Character => "Character writing",
            UseGroup::Chat => "Chat replies",
            UseGroup::Play => "Play scenes",
            UseGroup::Match => "Matches",
            UseGroup::Twin => "Twin Shades",
        }
    }
}

/// The outcomes that are not failures: `ok`, and a reply the user stopped.
pub const NOT_FAILURES: [&str; 2] = ["ok", "stopped"];

/// Whether an outcome counts as a failure (it is not one of [`NOT_FAILURES`]).
pub fn is_failure(outcome: &str) -> bool {
    !NOT_FAILURES.contains(&outcome)
}

/// What the page calls a failure's kind.
pub fn failure_label(outcome: &str) -> &'static str {
    match outcome {
        "unavailable" => "The model service was unavailable",
        "timeout" => "Timed out",
        "rate_limited" => "Refused by the provider's rate limit",
        "rejected" => "Request refused by the provider",
        "blocked" => "Blocked by the provider's safety filter",
        "finished_early" => "The model stopped early",
        "cut_off" => "Cut off mid-answer",
        "invalid_reply" => "An answer that could not be used",
        "interrupted" => "Interrupted (the server stopped)",
        _ => "Other",
    }
}

/// Calls, failures, tokens and time over some set of calls.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageFigures {
    pub calls: u64,
    /// Calls that failed (any outcome but `ok` and stopped by the user).
    pub failed: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The median call time in milliseconds (estimated from buckets); none without calls or
    /// where time is not kept (by language).
    pub p50_ms: Option<u32>,
    /// The 95th percentile call time in milliseconds (estimated from buckets).
    pub p95_ms: Option<u32>,
}

/// One day's calls by use, and its failures and tokens.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUsage {
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
    pub character: u64,
    pub chat: u64,
    pub play: u64,
    #[serde(rename = "match")]
    pub matches: u64,
    pub twin: u64,
    pub failed: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl DayUsage {
    /// The day's calls of one use.
    pub fn calls_of(&self, group: UseGroup) -> u64 {
        match group {
            UseGroup::Character => self.character,
            UseGroup::Chat => self.chat,
            UseGroup::Play => self.play,
            UseGroup::Match => self.matches,
            UseGroup::Twin => self.twin,
        }
    }

    pub fn calls(&self) -> u64 {
        UseGroup::ALL.iter().map(|g| self.calls_of(*g)).sum()
    }
}

/// One line of a breakdown: a use, a provider, a language or a failure's kind, with its figures.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    /// What it is, as stored (`chat`, `gemini`, `fr`, `timeout`; empty for calls with no language).
    pub key: String,
    /// What the page calls it.
    pub label: String,
    pub figures: UsageFigures,
}

/// A user's model usage over the last `days` days, today included.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub days: u16,
    /// The first day, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// The last day (today), `YYYY-MM-DD` (UTC).
    pub to: String,
    pub totals: UsageFigures,
    /// Every day of the period, oldest first, days without calls included.
    pub daily: Vec<DayUsage>,
    pub by_use: Vec<UsageLine>,
    pub by_provider: Vec<UsageLine>,
    pub by_language: Vec<UsageLine>,
    /// Failed calls by kind of failure, most frequent first.
    pub failures: Vec<UsageLine>,
}

/// The signed-in user's usage over the last `days` days (7, 30 or 90).
#[server(endpoint = "usage/report")]
pub async fn get_usage(days: u16) -> Result<UsageReport, AppError> {
    service::report(days).await
}

/// What one model call did, for the usage dashboard.
#[cfg(feature = "ssr")]
pub struct Record<'a> {
    pub owner_id: &'a str,
    pub kind: &'a str,
    pub provider: &'a str,
    pub language: Option<&'a str>,
    pub outcome: &'a str,
    pub duration_ms: i64,
    pub usage: Usage,
}

/// The outcome label of a result: `ok` or the error's kind.
#[cfg(feature = "ssr")]
pub fn outcome<T>(r: &Result<T, LlmError>) -> &'static str {
    use LlmError::*;
    match r {
        Ok(_) => "ok",
        Err(Unavailable(_)) => "unavailable",
        Err(Timeout(_)) => "timeout",
        Err(RateLimited { .. }) => "rate_limited",
        Err(Rejected(_)) => "rejected",
        Err(PromptBlocked(_)) => "blocked",
        Err(Finished(_)) => "finished_early",
        Err(CutOff(_)) => "cut_off",
        Err(InvalidReply(_)) => "invalid_reply",
    }
}

/// The span of one model call, a child of the request's: every line logged while the call runs
/// carries its `call_id` (with the request's id and user id), so one complaint can be followed
/// through every line of the call.
#[cfg(feature = "ssr")]
pub fn call_span(provider: &str, use_: &str) -> tracing::Span {
    tracing::info_span!(
        "model_call",
        call_id = %crate::infra::new_id(),
        provider,
        r#use = use_
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_hold_their_upper_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(50), 0);
        assert_eq!(bucket_of(51), 1);
        assert_eq!(bucket_of(120_000), LATENCY_BOUNDS_MS.len() - 1);
        assert_eq!(bucket_of(120_001), LATENCY_BUCKETS - 1);
        assert_eq!(bucket_of(i64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn groups_name_every_recorded_kind() {
        for (kind, group) in [
            ("character", UseGroup::Character),
            ("character_repair", UseGroup::Character),
            ("section", UseGroup::Character),
            ("chat", UseGroup::Chat),
            ("play_turn", UseGroup::Play),
            ("play_turn_repair", UseGroup::Play),
            ("play_summary_repair", UseGroup::Play),
            ("match", UseGroup::Match),
            ("icebreaker", UseGroup::Match),
            ("shades_repair", UseGroup::Twin),
        ] {
            assert_eq!(UseGroup::of(kind), group, "{kind}");
        }
    }

    #[test]
    fn percentiles_of_nothing_and_of_the_open_bucket() {
        assert_eq!(percentile(&[0; LATENCY_BUCKETS], 0.5), None);
        let mut hist = [0; LATENCY_BUCKETS];
        hist[LATENCY_BUCKETS - 1] = 3;
        assert_eq!(percentile(&hist, 0.95), Some(120_000));
    }

    proptest! {
        /// A percentile read from the buckets lies in the bucket of the exact percentile.
        #[test]
        fn percentile_falls_in_the_true_bucket(
            mut times in proptest::collection::vec(0i64..200_000, 1..400),
            q in prop_oneof![Just(0.5), Just(0.95), 0.01f64..1.0],
        ) {
            let mut hist = [0u64; LATENCY_BUCKETS];
            for t in &times {
                hist[bucket_of(*t)] += 1;
            }
            times.sort_unstable();
            let rank = ((q * times.len() as f64).ceil() as usize).max(1);
            let exact = times[rank - 1];
            let estimate = percentile(&hist, q).unwrap();
            let b = bucket_of(exact);
            let lower = if b == 0 { 0 } else { LATENCY_BOUNDS_MS[b - 1] };
            let upper = LATENCY_BOUNDS_MS.get(b).copied().unwrap_or(lower);
            prop_assert!(estimate >= lower && estimate <= upper,
                "q {q}: exact {exact} in [{lower}, {upper}], estimate {estimate}");
        }
    }
}
