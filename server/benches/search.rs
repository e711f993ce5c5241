//! Benchmark (not a test): the dashboard at scale. One user with 100,000 characters among
//! 1,000,000 (the rest spread over 90 other users); times, through a real server on loopback, the
//! `characters/search` server function for the first page, a search for a word one character in
//! ten has, for a word only one has, for two words, a trait filter, a page deep in the name order
//! and a page deep in a search, and reports p50/p99/max (targets: p99 under 10 ms on SQLite,
//! under 20 ms on Postgres).
//!
//! Seeding writes the characters straight into `characters` with `INSERT … SELECT` over a
//! generated series, in batches (the full-text index — FTS5's triggers on SQLite, the generated
//! tsvector on Postgres — is kept as rows go in, as it is for the app). Names, traits, backstories
//! and worlds are drawn from word lists by a hash of the row's number; each backstory also has a
//! word of its own (`w` and the number).
//!
//! Run: `cargo bench -p server --bench search`. SQLite in a temp folder; Postgres too when
//! `TEST_POSTGRES_URL` is set (a fresh database is created on it and dropped afterwards).

mod support;

use app::infra::db::Db;
use std::time::Instant;
use support::report;

const MINE: i64 = 100_000;
const TOTAL: i64 = 1_000_000;
const OTHERS: i64 = 90;
const BATCH: i64 = 50_000;
const RUNS: usize = 200;

const FIRST: [&str; 20] = [
    "Mira", "Kai", "Ansel", "Zoe", "Bram", "Orla", "Ilse", "Tomas", "Nadia", "Ravi", "Yuki",
    "Lena", "Omar", "Petra", "Sven", "Aiko", "Dario", "Freya", "Hugo", "Ines",
];
const LAST: [&str; 20] = [
    "Holt", "Serrano", "Brandt", "Ode", "Vance", "Marsh", "Okafor", "Lind", "Castel", "Reyes",
    "Tanaka", "Novak", "Quill", "Ashby", "Moreau", "Kovac", "Petrov", "Silva", "Weir", "Young",
];
const TRAITS: [&str; 20] = [
    "brave", "curious", "calm", "stubborn", "gentle", "wry", "loyal", "restless", "shy", "bold",
    "patient", "witty", "moody", "kind", "proud", "clever", "quiet", "fierce", "dreamy", "sly",
];
const WORDS: [&str; 40] = [
    "lighthouse",
    "harbour",
    "mountain",
    "village",
    "clock",
    "island",
    "map",
    "forest",
    "river",
    "castle",
    "library",
    "market",
    "storm",
    "garden",
    "bakery",
    "workshop",
    "ship",
    "desert",
    "glacier",
    "orchard",
    "canal",
    "tower",
    "mine",
    "festival",
    "train",
    "bridge",
    "monastery",
    "circus",
    "vineyard",
    "observatory",
    "archive",
    "forge",
    "meadow",
    "reef",
    "canyon",
    "theatre",
    "museum",
    "temple",
    "quarry",
    "lagoon",
];
const LANGUAGES: [&str; 5] = ["English", "Spanish", "German", "French", "Japanese"];

/// `CASE (h / div) % n WHEN 0 THEN 'w0' … END`: a word of `words` picked by the row's hash.
fn pick(div: u64, words: &[&str]) -> String {
    let whens: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("WHEN {i} THEN '{w}'"))
        .collect();
    format!("CASE (h / {div}) % {} {} END", words.len(), whens.join(" "))
}

fn insert_sql(postgres: bool, series: &str, now: i64) -> String {
    let json = |s: String| {
        if postgres {
            format!("CAST({s} AS JSONB)")
        } else {
            s
        }
    };
    let traits = json(format!(
        "'[\"' || {} || '\", \"' || {} || '\"]'",
        pick(3, &TRAITS),
        pick(61, &TRAITS)
    ));
    // The user's own labels: a tag one character in ten has, one about one in a thousand has,
    // and one in fifty a favourite.
    let tags = json(
        "CASE WHEN n % 997 = 0 THEN '[\"rare\"]' WHEN n % 10 = 0 THEN '[\"crew\"]' ELSE '[]' END"
            .into(),
    );
    let options = json("'[\"Ask.\", \"Wait.\", \"Leave.\"]'".into());
    let endings = json("'[{\"kind\": \"happy\", \"text\": \"Home.\"}, {\"kind\": \"tragic\", \"text\": \"Lost.\"}, {\"kind\": \"ambiguous\", \"text\": \"Unknown.\"}]'".into());
    format!(
        "INSERT INTO characters (id, owner_id, name, traits, age, gender, voice, scenes, language, avatar, \
           backstory, story_context, opening_line, start_options, endings, created_at, updated_at, \
           tags, favourite) \
         SELECT 'c' || CAST(n AS TEXT), \
           CASE WHEN n < {MINE} THEN 'bench-me' ELSE 'bench-' || CAST(n % {OTHERS} AS TEXT) END, \
           {} || ' ' || {}, {traits}, 20 + n % 50, 'unspecified', '', 10, {}, 'tide', \
           'A ' || {} || ' keeper from the ' || {} || ' by the ' || {} || '; w' || CAST(n AS TEXT) || '.', \
           'The ' || {} || ' and the ' || {} || '.', 'Hello.', {options}, {endings}, \
           {now} - ({TOTAL} - n) * 1000, {now} - ({TOTAL} - n) * 1000, \
           {tags}, CASE WHEN n % 50 = 0 THEN 1 ELSE 0 END \
         FROM (SELECT n, (n * 2654435761) % 4294967296 AS h FROM {series}) AS t",
        pick(7, &FIRST),
        pick(101, &LAST),
        pick(1009, &LANGUAGES),
        pick(11, &WORDS),
        pick(113, &WORDS),
        pick(1013, &WORDS),
        pick(10007, &WORDS),
        pick(100003, &WORDS),
    )
}

#[tokio::main]
async fn main() {
    support::on_each_database("search", |label, url, data| async move {
        run(label, &url, &data).await
    })
    .await;
}

async fn run(label: &str, url: &str, data: &std::path::Path) {
    println!("{label}: {MINE} characters of one user among {TOTAL}, {RUNS} timed calls each");
    let env = support::base_env(url, data);
    let base = support::start_in_process(&env).await;
    let db = Db::connect(url).await.unwrap();
    let (client, _) = support::signed_in(&base).await;
    let owner = support::user_id(&client, &base).await;

    let seeding = Instant::now();
    let now = app::infra::now_ms();
    app::with_pool!(&db, pool => {
        for i in 0..OTHERS {
            sqlx::query(
                "INSERT INTO users (id, display_name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            )
            .bind(format!("bench-{i}"))
            .bind(format!("Bench {i}"))
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
        }
    });
    // The signed-in user's rows are seeded under their id ('bench-me' in the statement).
    let postgres = url.starts_with("postgres");
    for start in (0..TOTAL).step_by(BATCH as usize) {
        let end = (start + BATCH).min(TOTAL) - 1;
        let series = if postgres {
            format!("generate_series({start}, {end}) AS s(n)")
        } else {
            format!(
                "(WITH RECURSIVE s(n) AS (SELECT {start} UNION ALL SELECT n + 1 FROM s WHERE n < {end}) SELECT n FROM s)"
            )
        };
        let sql = insert_sql(postgres, &series, now).replace("'bench-me'", &format!("'{owner}'"));
        app::with_pool!(&db, pool => {
            sqlx::query(&sql).execute(pool).await.unwrap();
        });
    }
    // Each tag's index rows, as the app keeps them (its tags lower-cased already).
    let index_tags = if postgres {
        "INSERT INTO character_tags (character_id, owner_id, tag, created_at) \
         SELECT c.id, c.owner_id, j.value, c.created_at FROM characters c, jsonb_array_elements_text(c.tags) AS j(value)"
    } else {
        "INSERT INTO character_tags (character_id, owner_id, tag, created_at) \
         SELECT c.id, c.owner_id, j.value, c.created_at FROM characters c, json_each(c.tags) AS j"
    };
    app::with_pool!(&db, pool => {
        sqlx::query(index_tags).execute(pool).await.unwrap();
    });
    if postgres {
        app::with_pool!(&db, pool => {
            sqlx::query("ANALYZE character_tags").execute(pool).await.unwrap();
            sqlx::query("ANALYZE characters").execute(pool).await.unwrap();
        });
    }
    println!("  seeded in {:.1}s", seeding.elapsed().as_secs_f64());

    let search = |filter: serde_json::Value, after: Option<String>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let res = client
                .post(format!("{base}/api/characters/search"))
                .header("accept", "application/json")
                .json(&serde_json::json!({ "filter": filter, "after": after, "limit": 24 }))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<app::characters::CharacterPage>().await.unwrap()
        }
    };
    // Deep cursors: 100 pages into the name order, 10 pages into a search.
    let deep = |filter: serde_json::Value, pages: usize| {
        let search = &search;
        async move {
            let mut after = None;
            for _ in 0..pages {
                after = search(filter.clone(), after).await.next;
            }
            after.expect("that many pages")
        }
    };
    let by_name = serde_json::json!({"sort": "name"});
    let common = serde_json::json!({"q": "lighthouse"});
    let name_deep = deep(by_name.clone(), 100).await;
    let common_deep = deep(common.clone(), 10).await;
    let cases: Vec<(&str, serde_json::Value, Option<String>)> = vec![
        (
            "first page (newest of 100,000)",
            serde_json::json!({}),
            None,
        ),
        ("search: a word ~1 in 10 has", common.clone(), None),
        (
            "search: a word one character has",
            serde_json::json!({"q": "w54321"}),
            None,
        ),
        (
            "search: two words",
            serde_json::json!({"q": "lighthouse harbour"}),
            None,
        ),
        (
            "search: a name prefix",
            serde_json::json!({"q": "mir"}),
            None,
        ),
        (
            "filter: a trait",
            serde_json::json!({"trait_name": "curious"}),
            None,
        ),
        (
            "filter: trait and language",
            serde_json::json!({"trait_name": "curious", "language": "French"}),
            None,
        ),
        (
            "filter: a tag ~1 in 10 has",
            serde_json::json!({"tag": "crew"}),
            None,
        ),
        (
            "filter: a tag ~1 in 1,000 has",
            serde_json::json!({"tag": "rare"}),
            None,
        ),
        (
            "filter: favourites (1 in 50)",
            serde_json::json!({"favourites": true}),
            None,
        ),
        (
            "order by name, after 2,400",
            by_name.clone(),
            Some(name_deep),
        ),
        (
            "search, after 240 results",
            common.clone(),
            Some(common_deep),
        ),
    ];
    let mut found = Vec::new();
    for (label, filter, after) in &cases {
        let mut times = Vec::with_capacity(RUNS);
        let mut n = 0;
        for round in 0..RUNS + 10 {
            let t = Instant::now();
            let page = search(filter.clone(), after.clone()).await;
            if round >= 10 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            n = page.characters.len();
        }
        found.push((label.to_string(), n));
        report(label, times);
    }
    for (label, n) in found {
        println!("  ({label}: {n} on the page)");
    }
    db.close().await;
}
