//! Benchmark (not a test): the usage page of a user with 1,000,000 recorded model calls over 90
//! days (and 200,000 more by other users). Times, through a real server on loopback, the
//! `usage/report` server function and the whole server-rendered `/usage` page for 7, 30 and 90
//! days, and reports p50/p99/max (target: the page under 50 ms).
//!
//! Seeding writes the calls straight into `generations` with one `INSERT … SELECT` over a
//! generated series (varied uses, providers, languages, outcomes and times), then rebuilds the
//! daily rollups from them with `app::usage::store::rebuild_rollups` — the same statements as
//! the migration that made them; the app keeps them call by call (tested in `it::usage`).
//!
//! Run: `cargo bench -p server --bench usage`. SQLite in a temp folder; Postgres too when
//! `TEST_POSTGRES_URL` is set (a fresh database is created on it and dropped afterwards).

mod support;

use app::infra::db::Db;
use std::time::Instant;
use support::report;

const CALLS: i64 = 1_000_000;
const OTHERS: i64 = 200_000;
const RUNS: usize = 200;

#[tokio::main]
async fn main() {
    support::on_each_database("usage", |label, url, data| async move {
        run(label, &url, &data).await
    })
    .await;
}

/// The SELECT that makes call number `n` (a column of the series): an owner, a use, a provider,
/// a language, an outcome, a time in the last 90 days and a duration spread over the buckets.
fn calls_select(series: &str, owner: &str, now: i64) -> String {
    // `h`: a multiplicative hash of `n`, so the choices below vary independently of each other.
    format!(
        "SELECT 'bench-' || CAST(n AS TEXT) || '-{owner}', '{owner}', \
           CASE (h / 7) % 9 WHEN 0 THEN 'character' WHEN 1 THEN 'section' WHEN 2 THEN 'play_turn' \
             WHEN 3 THEN 'match' WHEN 4 THEN 'shades' WHEN 5 THEN 'play_summary' \
             WHEN 6 THEN 'character_repair' ELSE 'chat' END, \
           CASE (h / 101) % 5 WHEN 0 THEN 'openai' WHEN 1 THEN 'offline' ELSE 'gemini' END, \
           CASE WHEN (h / 7) % 9 IN (0, 1, 6) THEN \
             (CASE (h / 1009) % 4 WHEN 0 THEN 'French' WHEN 1 THEN 'Japanese' ELSE 'English' END) \
             ELSE NULL END, \
           CASE (h / 10007) % 23 WHEN 0 THEN 'timeout' WHEN 1 THEN 'unavailable' \
             WHEN 2 THEN 'invalid_reply' WHEN 3 THEN 'stopped' WHEN 4 THEN 'rate_limited' ELSE 'ok' END, \
           (h / 13) % 40000 + 20, (h / 31) % 3000 + 200, (h / 17) % 900 + 10, \
           {now} - ((h / 100003) % 89) * 86400000 - (h % 86400) * 1000 \
         FROM (SELECT n, (n * 2654435761) % 4294967296 AS h FROM {series}) AS t"
    )
}

async fn run(label: &str, url: &str, data: &std::path::Path) {
    println!("{label}: {CALLS} calls by one user over 90 days, {OTHERS} by others, {RUNS} timed calls each");
    let env = support::base_env(url, data);
    let base = support::start_in_process(&env).await;
    let db = Db::connect(url).await.unwrap();
    let (client, _) = support::signed_in(&base).await;
    let owner = support::user_id(&client, &base).await;
    let other = app::auth::store::upsert_identity(&db, "bench", "other", "Other")
        .await
        .unwrap()
        .id;

    let seeding = Instant::now();
    let now = app::infra::now_ms();
    let columns = "INSERT INTO generations (id, owner_id, kind, provider, language, outcome, \
                   duration_ms, input_tokens, output_tokens, created_at) ";
    for (who, count) in [(&owner, CALLS), (&other, OTHERS)] {
        match &db {
            Db::Sqlite(pool) => {
                let sql = format!(
                    "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < {count}) {columns}{}",
                    calls_select("s", who, now)
                );
                sqlx::query(&sql).execute(pool).await.unwrap();
            }
            Db::Postgres(pool) => {
                let sql = format!(
                    "{columns}{}",
                    calls_select(
                        &format!("generate_series(0, {count} - 1) AS s(n)"),
                        who,
                        now
                    )
                );
                sqlx::query(&sql).execute(pool).await.unwrap();
            }
        }
    }
    app::usage::store::rebuild_rollups(&db).await.unwrap();
    let rows: (i64, i64) = app::with_pool!(&db, pool => {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM usage_daily WHERE owner_id = $1), \
                    (SELECT COUNT(*) FROM usage_latency WHERE owner_id = $1)",
        )
        .bind(&owner)
        .fetch_one(pool)
        .await
        .unwrap()
    });
    println!(
        "  seeded and rolled up in {:.1}s: {} daily rows, {} latency rows for the user",
        seeding.elapsed().as_secs_f64(),
        rows.0,
        rows.1
    );

    let mut results = Vec::new();
    for days in [7u16, 30, 90] {
        let (mut fun, mut page) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
        for round in 0..RUNS + 10 {
            let t = Instant::now();
            let res = client
                .post(format!("{base}/api/usage/report"))
                .header("accept", "application/json")
                .form(&[("days", days.to_string())])
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success());
            let r: app::usage::UsageReport = res.json().await.unwrap();
            let f = t.elapsed();
            if days == 90 && round == 0 {
                assert_eq!(r.totals.calls, CALLS as u64, "every call counted once");
            }

            let t = Instant::now();
            let res = client
                .get(format!("{base}/usage?days={days}"))
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success());
            let html = res.text().await.unwrap();
            assert!(html.contains("data-testid=\"chart-calls\""));
            let p = t.elapsed();
            if round >= 10 {
                fun.push(f.as_secs_f64() * 1000.0);
                page.push(p.as_secs_f64() * 1000.0);
            }
        }
        results.push((format!("usage/report ({days} days)"), fun));
        results.push((format!("GET /usage?days={days} (page HTML)"), page));
    }
    for (label, v) in results {
        report(&label, v);
    }
    db.close().await;
}
