//! The usage report: the period checked, the rollups read ([`super::store`]), and the figures
//! summed in one pass ([`aggregate`]).

use super::store::{self, DayKindRow, DimensionRow, LatencyRow, Sums, DAY_MS};
use super::{
    failure_label, percentile, DayUsage, UsageFigures, UsageLine, UsageReport, UseGroup,
    LATENCY_BUCKETS, PERIODS,
};
use crate::auth::{require_user, UserId};
use crate::error::{AppError, OrInternal};
use crate::infra::{db::Db, now_ms, AppState};
use crate::pages::layout::date;
use std::collections::BTreeMap;

#[tracing::instrument(skip_all, fields(days))]
pub async fn report(days: u16) -> Result<UsageReport, AppError> {
    let user = require_user().await?;
    report_for(&AppState::get()?.db, &user, days).await
}

/// [`report`] for `user`, however they are signed in (the REST API returns the same report).
pub async fn report_for(db: &Db, user: &UserId, days: u16) -> Result<UsageReport, AppError> {
    if !PERIODS.contains(&days) {
        return Err(AppError::BadRequest(
            "Choose a period of 7, 30 or 90 days.".into(),
        ));
    }
    let today = now_ms().div_euclid(DAY_MS);
    let from = today - i64::from(days) + 1;
    let (by_day, by_dimension, latency) = futures::try_join!(
        store::by_day_and_kind(db, &user.0, from),
        store::by_dimension(db, &user.0, from),
        store::latency_rows(db, &user.0, from)
    )
    .or_internal("load usage")?;
    Ok(aggregate(days, today, &by_day, &by_dimension, &latency))
}

/// Sums, per line, what the figures need.
#[derive(Default)]
struct Acc {
    figures: UsageFigures,
    hist: Option<[u64; LATENCY_BUCKETS]>,
}

impl Acc {
    fn add(&mut self, s: &Sums) {
        self.figures.calls += s.calls.max(0) as u64;
        self.figures.failed += s.failed.max(0) as u64;
        self.figures.input_tokens += s.input_tokens.max(0) as u64;
        self.figures.output_tokens += s.output_tokens.max(0) as u64;
    }

    fn time(&mut self, row: &LatencyRow) {
        let hist = self.hist.get_or_insert([0; LATENCY_BUCKETS]);
        if let Some(slot) = usize::try_from(row.bucket)
            .ok()
            .and_then(|b| hist.get_mut(b))
        {
            *slot += row.calls.max(0) as u64;
        }
    }

    fn done(mut self) -> UsageFigures {
        if let Some(hist) = self.hist {
            self.figures.p50_ms = percentile(&hist, 0.5);
            self.figures.p95_ms = percentile(&hist, 0.95);
        }
        self.figures
    }
}

/// The report for the `days` days up to `today` (UTC days since 1970) from the rollup's sums of
/// that period: per day and use kind, per provider, language and outcome, and the call times.
pub fn aggregate(
    days: u16,
    today: i64,
    by_day: &[DayKindRow],
    by_dimension: &[DimensionRow],
    latency: &[LatencyRow],
) -> UsageReport {
    let from = today - i64::from(days) + 1;
    let mut per_day: Vec<DayUsage> = (from..=today)
        .map(|d| DayUsage {
            date: date(d * DAY_MS),
            ..Default::default()
        })
        .collect();
    let mut totals = Acc::default();
    let mut by_use: BTreeMap<UseGroup, Acc> = BTreeMap::new();
    for row in by_day {
        let Some(day) = usize::try_from(row.day - from)
            .ok()
            .and_then(|i| per_day.get_mut(i))
        else {
            // Past today (a clock that moved back): not counted anywhere.
            continue;
        };
        let group = UseGroup::of(&row.kind);
        let s = &row.sums;
        let calls = s.calls.max(0) as u64;
        match group {
            UseGroup::Character => day.character += calls,
            UseGroup::Chat => day.chat += calls,
            UseGroup::Play => day.play += calls,
            UseGroup::Match => day.matches += calls,
            UseGroup::Twin => day.twin += calls,
        }
        day.failed += s.failed.max(0) as u64;
        day.input_tokens += s.input_tokens.max(0) as u64;
        day.output_tokens += s.output_tokens.max(0) as u64;
        totals.add(s);
        by_use.entry(group).or_default().add(s);
    }
    let mut by_provider: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_language: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut failures: BTreeMap<&str, Acc> = BTreeMap::new();
    for row in by_dimension {
        match row.dimension.as_str() {
            "provider" => by_provider.entry(&row.key).or_default().add(&row.sums),
            "language" => by_language.entry(&row.key).or_default().add(&row.sums),
            "outcome" if row.sums.failed > 0 => {
                failures.entry(&row.key).or_default().add(&row.sums)
            }
            _ => {}
        }
    }
    for row in latency {
        match row.dimension.as_str() {
            "kind" => {
                totals.time(row);
                by_use.entry(UseGroup::of(&row.key)).or_default().time(row);
            }
            "provider" => by_provider.entry(&row.key).or_default().time(row),
            _ => {}
        }
    }
    let line = |key: &str, label: String, acc: Acc| UsageLine {
        key: key.to_string(),
        label,
        figures: acc.done(),
    };
    let mut failures: Vec<UsageLine> = failures
        .into_iter()
        .map(|(k, acc)| line(k, failure_label(k).to_string(), acc))
        .collect();
    failures.sort_by_key(|l| std::cmp::Reverse(l.figures.calls));
    UsageReport {
        days,
        from: date(from * DAY_MS),
        to: date(today * DAY_MS),
        totals: totals.done(),
        daily: per_day,
        by_use: by_use
            .into_iter()
            .filter(|(_, acc)| acc.figures.calls > 0)
            .map(|(g, acc)| line(g.as_str(), g.label().to_string(), acc))
            .collect(),
        by_provider: by_provider
            .into_iter()
            .filter(|(_, acc)| acc.figures.calls > 0)
            .map(|(k, acc)| line(k, provider_label(k), acc))
            .collect(),
        by_language: by_language
            .into_iter()
            .map(|(k, acc)| {
                let label = if k.is_empty() {
                    "Not language-specific (chat, play, matches, Shades)".to_string()
                } else {
                    k.to_string()
                };
                line(k, label, acc)
            })
            .collect(),
        failures,
    }
}

fn provider_label(name: &str) -> String {
    match name {
        "gemini" => "Gemini".into(),
        "openai" => "OpenAI-compatible".into(),
        "offline" => "Built-in offline writer".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(calls: i64, failed: i64) -> Sums {
        Sums {
            calls,
            failed,
            input_tokens: calls * 10,
            output_tokens: calls * 20,
        }
    }

    fn day(day: i64, kind: &str, calls: i64, failed: i64) -> DayKindRow {
        DayKindRow {
            day,
            kind: kind.into(),
            sums: sums(calls, failed),
        }
    }

    fn dim(dimension: &str, key: &str, calls: i64, failed: i64) -> DimensionRow {
        DimensionRow {
            dimension: dimension.into(),
            key: key.into(),
            sums: sums(calls, failed),
        }
    }

    fn lat(dimension: &str, key: &str, bucket: i32, calls: i64) -> LatencyRow {
        LatencyRow {
            dimension: dimension.into(),
            key: key.into(),
            bucket,
            calls,
        }
    }

    #[test]
    fn sums_by_day_use_provider_language_and_failure() {
        let today = 20_000;
        let by_day = [
            day(today, "chat", 6, 0),
            day(today - 1, "character", 2, 0),
            day(today - 1, "character_repair", 1, 1),
            day(today - 6, "play_turn", 3, 3),
            // Past today: ignored.
            day(today + 1, "chat", 100, 0),
        ];
        let dims = [
            dim("provider", "gemini", 11, 3),
            dim("provider", "offline", 1, 1),
            dim("language", "", 9, 3),
            dim("language", "French", 3, 1),
            dim("outcome", "ok", 7, 0),
            dim("outcome", "stopped", 1, 0),
            dim("outcome", "invalid_reply", 1, 1),
            dim("outcome", "timeout", 3, 3),
        ];
        let latency = [
            lat("kind", "chat", 4, 6),
            lat("kind", "character", 10, 2),
            lat("provider", "gemini", 4, 6),
            lat("provider", "gemini", 10, 2),
        ];
        let r = aggregate(7, today, &by_day, &dims, &latency);
        assert_eq!(r.daily.len(), 7);
        assert_eq!(r.to, date(today * DAY_MS));
        assert_eq!(r.daily[6].chat, 6);
        assert_eq!(r.daily[5].character, 3);
        assert_eq!(r.daily[5].failed, 1);
        assert_eq!(r.daily[0].play, 3);
        assert_eq!(r.totals.calls, 12);
        assert_eq!(r.totals.failed, 4);
        assert_eq!(r.totals.input_tokens, 120);
        assert_eq!(
            r.totals.p50_ms.map(|m| (300..=500).contains(&m)),
            Some(true)
        );
        let chat = r.by_use.iter().find(|l| l.key == "chat").unwrap();
        assert_eq!(chat.figures.calls, 6);
        assert!(chat.figures.p95_ms.is_some());
        assert_eq!(
            r.by_provider
                .iter()
                .map(|l| l.key.as_str())
                .collect::<Vec<_>>(),
            ["gemini", "offline"]
        );
        let offline = &r.by_provider[1];
        assert_eq!((offline.figures.calls, offline.figures.p50_ms), (1, None));
        assert_eq!(
            r.by_language
                .iter()
                .find(|l| l.key == "French")
                .unwrap()
                .figures
                .calls,
            3
        );
        assert_eq!(
            r.failures
                .iter()
                .map(|l| (l.key.as_str(), l.figures.calls))
                .collect::<Vec<_>>(),
            [("timeout", 3), ("invalid_reply", 1)]
        );
    }
}
