//! Usage analytics, on SQLite and Postgres: what the model did (a character written, chat
//! replies, a failure) shows on the usage page — figures, SVG charts with their tables, the
//! breakdowns — and through the REST API as the same report; periods other than 7, 30 and 90
//! days are refused; another user's calls never count; and the daily rollups kept call by call
//! are exactly what rebuilding them from the calls gives.

use crate::common::*;
use app::auth::UserId;
use app::infra::llm::Usage;
use app::usage::{store, GetUsage, Record, UsageReport};
use mock_llm::Reply;
use serde_json::Value;

on_both_backends!(
    the_usage_page_and_the_api_show_what_the_model_did,
    the_rollups_agree_with_the_calls_and_periods_end_today,
);

async fn the_usage_page_and_the_api_show_what_the_model_did(backend: Backend) {
    let (app, mock) = app_with_gemini(backend, 1).await;
    // Nothing yet: the page says what to do.
    let empty = app.html("/usage").await;
    assert!(empty.contains("data-testid=\"usage-empty\""), "{empty}");

    // Two characters written (one here, one by `save_character`), two chat replies, and a third the provider refuses (503).
    app.call(app::characters::GenerateCharacter {
        draft: draft("Mira"),
        variation: 0,
    })
    .await
    .unwrap();
    let character = save_character(&app, "Mira").await;
    let chat = open_chat(&app, &character).await;
    for text in ["Hello there", "Tell me more"] {
        let (events, _) = send_message(&app, &chat.session_id, text).await;
        assert!(!deltas(&events).is_empty());
    }
    mock.push(Reply::Error {
        code: 503,
        status: "UNAVAILABLE".into(),
        message: "overloaded".into(),
        retry_delay: None,
        quota_id: None,
    });
    send_message(&app, &chat.session_id, "Are you there?").await;

    // Another user's calls never count in mine.
    let other = app::auth::store::upsert_identity(&app.db, "test", "someone", "Someone")
        .await
        .unwrap();
    record_at(&app, &UserId(other.id), "chat", "ok", 400, now_ms()).await;

    let r: UsageReport = app.call(GetUsage { days: 7 }).await.unwrap();
    assert_eq!(r.days, 7);
    assert_eq!(r.daily.len(), 7);
    assert_eq!(r.totals.calls, 5, "{r:#?}");
    assert_eq!(r.totals.failed, 1);
    let (input, output): (i64, i64) = app::with_pool!(&app.db, pool => {
        sqlx::query_as(
            "SELECT CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT) \
             FROM generations WHERE owner_id <> $1",
        )
        .bind(&other_id(&app).await)
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert!(input > 0 && output > 0);
    assert_eq!(
        (r.totals.input_tokens, r.totals.output_tokens),
        (input as u64, output as u64)
    );
    assert!(r.totals.p50_ms.is_some() && r.totals.p95_ms >= r.totals.p50_ms);
    let today = r.daily.last().unwrap();
    assert_eq!((today.character, today.chat, today.failed), (2, 3, 1));
    let line = |lines: &[app::usage::UsageLine], key: &str| {
        lines
            .iter()
            .find(|l| l.key == key)
            .unwrap_or_else(|| panic!("{key} in {lines:?}"))
            .figures
            .clone()
    };
    assert_eq!(line(&r.by_use, "chat").calls, 3);
    assert_eq!(line(&r.by_use, "chat").failed, 1);
    assert_eq!(line(&r.by_use, "character").calls, 2);
    assert_eq!(line(&r.by_provider, "gemini").calls, 5);
    assert_eq!(line(&r.by_language, "English").calls, 2);
    assert_eq!(r.failures.len(), 1);
    assert_eq!(line(&r.failures, "unavailable").calls, 1);

    // Only 7, 30 or 90 days.
    for days in [0, 8, 365] {
        let e = app.refusal(GetUsage { days }).await;
        assert!(matches!(e, app::error::AppError::BadRequest(_)), "{e:?}");
    }

    // The page, without JavaScript: the figures, both charts as SVG with their tables, the
    // breakdowns; every day of the period a row.
    let html = app.html("/usage?days=7").await;
    for part in [
        "data-testid=\"usage-totals\"",
        "data-testid=\"chart-calls\"",
        "data-testid=\"chart-tokens\"",
        "role=\"img\"",
        "data-testid=\"table-calls\"",
        "data-testid=\"by-use\"",
        "data-testid=\"by-provider\"",
        "data-testid=\"by-language\"",
        "data-testid=\"failures\"",
        "data-key=\"unavailable\"",
        "The model service was unavailable",
        "class=\"bar s-chat\"",
    ] {
        assert!(html.contains(part), "{part} missing from the usage page");
    }
    assert!(!html.contains("Someone"));
    let ninety = app.html("/usage?days=90").await;
    assert_eq!(
        between(&ninety, "data-testid=\"table-calls\"", "</table>")
            .matches("<th scope=\"row\"")
            .count(),
        90
    );
    assert!(ninety.contains("aria-current=\"page\">90 days"));

    // The same report through the REST API, with an ETag; bad periods are problems.
    let key = app
        .call(app::keys::CreateApiKey {
            name: "usage".into(),
            write: false,
            expires_in_days: 0,
        })
        .await
        .unwrap()
        .secret;
    let get = |path: &str| {
        new_client()
            .get(app.url(path))
            .header("authorization", format!("Bearer {key}"))
    };
    let res = get("/api/v1/usage?days=7").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let api: UsageReport = res.json().await.unwrap();
    assert_eq!(api, r);
    let res = get("/api/v1/usage?days=7")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = get("/api/v1/usage").send().await.unwrap();
    assert_eq!(res.json::<UsageReport>().await.unwrap().days, 30);
    for (bad, status) in [("days=8", 422), ("days=abc", 400), ("days=-1", 400)] {
        let res = get(&format!("/api/v1/usage?{bad}")).send().await.unwrap();
        assert_eq!(res.status(), status, "{bad}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["status"], status);
        assert!(p["request_id"].as_str().is_some_and(|id| id != "-"), "{p}");
    }
}

async fn the_rollups_agree_with_the_calls_and_periods_end_today(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let me = app
        .call(app::auth::GetCurrentUser {})
        .await
        .unwrap()
        .expect("signed in");
    let me = UserId(me.id);
    let day = store::DAY_MS;
    let now = now_ms();
    // Calls over 40 days, of every use, several providers and outcomes, and times from a few
    // milliseconds to past the last bucket.
    let kinds = [
        "character",
        "section_repair",
        "chat",
        "play_turn",
        "match",
        "shades",
        "icebreaker",
    ];
    let outcomes = ["ok", "ok", "ok", "timeout", "stopped", "invalid_reply"];
    for i in 0..120i64 {
        let at = now - (i % 40) * day - (i % 3) * 1000;
        record_at(
            &app,
            &me,
            kinds[i as usize % kinds.len()],
            outcomes[i as usize % outcomes.len()],
            (i * i * 37) % 150_000,
            at,
        )
        .await;
    }
    let before = rollups(&app).await;
    store::rebuild_rollups(&app.db).await.unwrap();
    assert_eq!(
        rollups(&app).await,
        before,
        "rollups kept call by call = rebuilt"
    );
    assert!(before.0.len() > 40 && before.1.len() > 40 && before.2.len() > 40);

    // The 7-day period holds exactly the calls of the last 7 UTC days, today included.
    let today = now.div_euclid(day);
    let in_period = |days: i64| {
        (0..120i64)
            .filter(|i| (now - (i % 40) * day - (i % 3) * 1000).div_euclid(day) > today - days)
            .count() as u64
    };
    for days in [7u16, 30, 90] {
        let r: UsageReport = app.call(GetUsage { days }).await.unwrap();
        assert_eq!(r.totals.calls, in_period(i64::from(days)), "{days} days");
        assert_eq!(
            r.daily.iter().map(|d| d.calls()).sum::<u64>(),
            r.totals.calls
        );
        assert_eq!(
            r.by_use.iter().map(|l| l.figures.calls).sum::<u64>(),
            r.totals.calls
        );
    }
}

async fn record_at(app: &TestApp, owner: &UserId, kind: &str, outcome: &str, ms: i64, at: i64) {
    store::insert(
        &app.db,
        &Record {
            owner_id: &owner.0,
            kind,
            provider: if ms % 2 == 0 { "gemini" } else { "openai" },
            language: (kind == "character").then_some("French"),
            outcome,
            duration_ms: ms,
            usage: Usage {
                input_tokens: 100 + (ms % 50) as u32,
                output_tokens: 20 + (ms % 7) as u32,
            },
        },
        at,
    )
    .await
    .unwrap();
}

type Rollups = (
    Vec<(String, i64, String, i64, i64, i64, i64)>,
    Vec<(String, i64, String, String, i64, i64, i64, i64)>,
    Vec<(String, i64, String, String, i32, i64)>,
);

/// The rollup tables, in a fixed order.
async fn rollups(app: &TestApp) -> Rollups {
    app::with_pool!(&app.db, pool => {
        let daily = sqlx::query_as(
            "SELECT owner_id, day, kind, calls, failed, input_tokens, output_tokens \
             FROM usage_daily ORDER BY owner_id, day, kind",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let by = sqlx::query_as(
            "SELECT owner_id, day, dimension, key, calls, failed, input_tokens, output_tokens \
             FROM usage_daily_by ORDER BY owner_id, day, dimension, key",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let latency = sqlx::query_as(
            "SELECT owner_id, day, dimension, key, bucket, calls FROM usage_latency \
             ORDER BY owner_id, day, dimension, key, bucket",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        (daily, by, latency)
    })
}

async fn other_id(app: &TestApp) -> String {
    app::auth::store::upsert_identity(&app.db, "test", "someone", "Someone")
        .await
        .unwrap()
        .id
}

fn now_ms() -> i64 {
    app::infra::now_ms()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).unwrap_or_else(|| panic!("{start}"));
    let rest = &s[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}
