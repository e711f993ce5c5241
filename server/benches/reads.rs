//! Benchmark (not a test): bounded reads at scale. One user with a chat of 10,000 messages and
//! 10,000 characters; times, through a real server on loopback, opening the chat (the
//! `chat/open` server function and the whole server-rendered chat page) and listing characters
//! (`characters/page`, the first page and a page deep in the list), and reports p50/p99/max.
//!
//! Seeding goes through the store functions (`characters::store::insert`,
//! `chat::store::insert_message`), each its own short transaction, several characters at once.
//!
//! Run: `cargo bench -p server --bench reads`. SQLite in a temp folder; Postgres too when
//! `TEST_POSTGRES_URL` is set (a fresh database is created on it and dropped afterwards).

mod support;

use app::auth::UserId;
use app::chat::{ChatView, MessageRole, MessageStatus};
use app::infra::db::Db;
use futures::{stream, StreamExt};
use std::time::Instant;
use support::report;

const MESSAGES: usize = 10_000;
const CHARACTERS: usize = 10_000;
const RUNS: usize = 300;

#[tokio::main]
async fn main() {
    support::on_each_database("reads", |label, url, data| async move {
        run(label, &url, &data).await
    })
    .await;
}

async fn run(label: &str, url: &str, data: &std::path::Path) {
    println!("{label}: {MESSAGES} messages in one chat, {CHARACTERS} characters, {RUNS} timed calls each");
    let env = support::base_env(url, data);
    let base = support::start_in_process(&env).await;
    let db = Db::connect(url).await.unwrap();
    let (client, _) = support::signed_in(&base).await;
    let post = |path: &str, form: Vec<(&str, String)>| {
        client
            .post(format!("{base}/api/{path}"))
            .header("accept", "application/json")
            .form(&form)
            .send()
    };
    let me: serde_json::Value = post("auth/me", vec![]).await.unwrap().json().await.unwrap();
    let owner = UserId(me["id"].as_str().unwrap().to_string());

    // Seed through the store.
    let seeding = Instant::now();
    let draft: app::domain::CharacterDraft = serde_json::from_value(support::draft()).unwrap();
    let story: app::domain::GeneratedCharacter = serde_json::from_value(
        app::infra::llm::offline::write_character(&draft.parse_seed().unwrap(), 0),
    )
    .unwrap();
    let spec = draft.with_story(&story).parse_spec().unwrap();
    let ids: Vec<String> = stream::iter(0..CHARACTERS)
        .map(|_| app::characters::store::insert(&db, &owner, &spec))
        .buffer_unordered(8)
        .map(Result::unwrap)
        .collect()
        .await;
    let character = ids[0].clone();
    let session = app::chat::store::open_session(&db, &owner, &character)
        .await
        .unwrap()
        .unwrap();
    for i in 0..MESSAGES {
        let role = if i % 2 == 0 {
            MessageRole::User
        } else {
            MessageRole::Assistant
        };
        let text =
            format!("Message {i}: a line of conversation of an ordinary length, give or take.");
        app::chat::store::insert_message(&db, &session, role, &text, MessageStatus::Complete)
            .await
            .unwrap();
    }
    println!("  seeded in {:.1}s", seeding.elapsed().as_secs_f64());

    // A cursor deep in the list: the character 100 pages in.
    let mut deep = None;
    for _ in 0..100 {
        let page: serde_json::Value = post(
            "characters/page",
            deep.iter().map(|d: &String| ("after", d.clone())).collect(),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        deep = page["next"].as_str().map(str::to_string);
    }
    let deep = deep.expect("more than 100 pages");

    let time = |label: &'static str| (label, Vec::with_capacity(RUNS));
    let mut results = vec![
        time("chat/open (latest 50 of 10,000)"),
        time("GET /characters/:id (chat page HTML)"),
        time("characters/page (first 24 of 10,000)"),
        time("characters/page (after 2,400)"),
    ];
    for round in 0..RUNS + 20 {
        let t = Instant::now();
        let res = post("chat/open", vec![("character_id", character.clone())])
            .await
            .unwrap();
        assert!(res.status().is_success());
        let view: ChatView = res.json().await.unwrap();
        assert_eq!(view.messages.len(), 50);
        let open = t.elapsed();

        let t = Instant::now();
        let res = client
            .get(format!("{base}/characters/{character}"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        res.bytes().await.unwrap();
        let page = t.elapsed();

        let t = Instant::now();
        let res = post("characters/page", vec![]).await.unwrap();
        assert!(res.status().is_success());
        res.bytes().await.unwrap();
        let first = t.elapsed();

        let t = Instant::now();
        let res = post("characters/page", vec![("after", deep.clone())])
            .await
            .unwrap();
        assert!(res.status().is_success());
        res.bytes().await.unwrap();
        let later = t.elapsed();

        if round >= 20 {
            for (i, d) in [open, page, first, later].into_iter().enumerate() {
                results[i].1.push(d.as_secs_f64() * 1000.0);
            }
        }
    }
    for (label, v) in results {
        report(label, v);
    }
    db.close().await;
}
