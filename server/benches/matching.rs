//! Benchmark (not a test): ranking match candidates among 100,000 twins open to matches. Each
//! twin has eight words drawn from a 3,000-word vocabulary with a skewed (Zipf-like) frequency,
//! as real Shades' words are; the signed-in user's twin shares some of the common ones. Times,
//! through a real server on loopback, the `matches/candidates` server function (which runs the
//! ranking query, `twins::store::candidates`, and lists the user's characters), and the query
//! alone, and reports p50/p99/max.
//!
//! Seeding is bulk SQL (multi-row inserts in transactions): users, twins, `twin_terms`.
//!
//! Run: `cargo bench -p server --bench matching`. SQLite in a temp folder; Postgres too when
//! `TEST_POSTGRES_URL` is set (a fresh database is created on it and dropped afterwards).

mod support;

use app::auth::UserId;
use app::infra::db::Db;
use std::time::Instant;
use support::report;

const TWINS: usize = 100_000;
const WORDS_PER_TWIN: usize = 8;
const VOCABULARY: usize = 3_000;
const RUNS: usize = 300;
const BATCH: usize = 500;

#[tokio::main]
async fn main() {
    support::on_each_database("matching", |label, url, data| async move {
        run(label, &url, &data).await
    })
    .await;
}

/// Word `i` of the vocabulary.
fn word(i: usize) -> String {
    format!("word{i:04}")
}

/// A small deterministic generator (xorshift), so every run seeds the same twins.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A vocabulary index skewed toward small ones (the square of a uniform draw).
    fn skewed(&mut self) -> usize {
        let u = (self.next() % 10_000) as f64 / 10_000.0;
        ((u * u) * VOCABULARY as f64) as usize
    }
}

async fn exec(db: &Db, sql: &str) {
    app::with_pool!(db, pool => { sqlx::query(sql).execute(pool).await.unwrap(); });
}

async fn run(label: &str, url: &str, data: &std::path::Path) {
    println!(
        "{label}: {TWINS} twins open to matches, {WORDS_PER_TWIN} words each, {RUNS} timed calls"
    );
    let env = support::base_env(url, data);
    let base = support::start_in_process(&env).await;
    let db = Db::connect(url).await.unwrap();
    let (client, _) = support::signed_in(&base).await;
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}/api/{path}"))
            .header("accept", "application/json")
            .json(&body)
            .send()
    };

    let seeding = Instant::now();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for start in (0..TWINS).step_by(BATCH) {
        let end = (start + BATCH).min(TWINS);
        let mut users = Vec::new();
        let mut twins = Vec::new();
        let mut terms = Vec::new();
        for i in start..end {
            users.push(format!("('u{i}', 'User {i}', 0, 0)"));
            twins.push(format!("('t{i}', 'u{i}', 'Twin {i}', '', 1, 0, 0)"));
            let mut seen = Vec::new();
            while seen.len() < WORDS_PER_TWIN {
                let w = rng.skewed();
                if !seen.contains(&w) {
                    seen.push(w);
                    terms.push(format!("('t{i}', '{}', {})", word(w), 1 + (rng.next() % 3)));
                }
            }
        }
        let tx = |table: &str, cols: &str, rows: &[String]| {
            format!("INSERT INTO {table} ({cols}) VALUES {}", rows.join(", "))
        };
        exec(
            &db,
            &tx("users", "id, display_name, created_at, updated_at", &users),
        )
        .await;
        exec(
            &db,
            &tx(
                "twins",
                "id, owner_id, display_name, bio, matchable, created_at, updated_at",
                &twins,
            ),
        )
        .await;
        exec(&db, &tx("twin_terms", "twin_id, term, weight", &terms)).await;
    }
    // Statistics for the planners, as a running database would have them.
    exec(&db, "ANALYZE").await;
    println!("  seeded in {:.1}s", seeding.elapsed().as_secs_f64());

    // The signed-in user's twin: open, with public Shades whose words are common ones (the
    // heaviest case: many twins share them) and rarer ones.
    let shade = |name: &str, topics: &str| {
        serde_json::json!({"name": name, "icon": "🌙", "description": format!("{name} {topics}"),
            "confidence": 0.8, "topics": topics, "source": "user", "public": true})
    };
    let twin = serde_json::json!({"twin": {"name": "Me", "bio": "", "matchable": true, "shades": [
        shade(&word(0), &format!("{}, {}", word(1), word(2))),
        shade(&word(5), &format!("{}, {}", word(40), word(900))),
        shade(&word(1500), &format!("{}, {}", word(2200), word(2999))),
    ]}});
    let res = post("twins/save", twin).await.unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let owner = UserId(support::user_id(&client, &base).await);
    let my_terms: Vec<String> = app::domain::terms(
        &[0, 1, 2, 5, 40, 900, 1500, 2200, 2999].map(word).join(" "),
        64,
    );

    let mut http = Vec::with_capacity(RUNS);
    let mut query = Vec::with_capacity(RUNS);
    for round in 0..RUNS + 20 {
        let t = Instant::now();
        let res = client
            .post(format!("{base}/api/matches/candidates"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let c: serde_json::Value = res.json().await.unwrap();
        assert_eq!(c["twins"].as_array().unwrap().len(), 10);
        let h = t.elapsed();
        let t = Instant::now();
        let found = app::twins::store::candidates(&db, &owner, &my_terms, 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 10);
        let q = t.elapsed();
        if round >= 20 {
            http.push(h.as_secs_f64() * 1000.0);
            query.push(q.as_secs_f64() * 1000.0);
        }
    }
    report("matches/candidates (server function)", http);
    report("twins::store::candidates (the query)", query);
    db.close().await;
}
