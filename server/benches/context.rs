//! Benchmark (not a test): building a chat reply's prompt for a chat of 10,000 messages with a
//! character whose card has a 200-entry lorebook, within Gemini's default budget (32,000 tokens).
//!
//! Two figures: the builder alone (`chat::context::build`, given all 10,000 messages in memory),
//! and the whole preparation of a request as a reply does it (`chat::seen::request_in`: the card
//! read and its lorebook parsed, the branch read back a page at a time until it could fill the
//! budget, the prompt built, and the record of what the model saw written), on SQLite and Postgres.
//!
//! Seeding: the character saved through the app, its card set in SQL, the chat written in batches
//! (`chat::sessions::made_with`).
//!
//! Run: `cargo bench -p server --bench context`. SQLite in a temp folder; Postgres too when
//! `TEST_POSTGRES_URL` is set (a fresh database is created on it and dropped afterwards).

mod support;

use app::auth::UserId;
use app::chat::context::{self, Sources};
use app::chat::sessions::{NewRow, Party};
use app::chat::{MessageRole, MessageStatus};
use app::infra::db::Db;
use app::infra::llm::{Role, Turn};
use serde_json::json;
use std::time::Instant;
use support::report;

const MESSAGES: usize = 10_000;
const ENTRIES: usize = 200;
const BUDGET: usize = 32_000;
const RUNS: usize = 1_000;
const DB_RUNS: usize = 300;

/// Message `i`: of an ordinary length, naming one of the lorebook's keys now and then.
fn message(i: usize) -> String {
    format!(
        "Message {i}: a line of conversation of an ordinary length, about key{} and the weather, give or take.",
        (i * 7) % (ENTRIES + 50)
    )
}

/// A card with `ENTRIES` lorebook entries: two keys each, some constant, some selective.
fn card() -> serde_json::Value {
    let entries: Vec<serde_json::Value> = (0..ENTRIES)
        .map(|i| {
            json!({
                "keys": [format!("key{i}"), format!("alias{i}")],
                "secondary_keys": ["weather"],
                "selective": i % 5 == 0,
                "constant": i % 50 == 0,
                "content": format!("Entry {i}: a fact about the world that the model is told when it comes up, of a sentence or two."),
                "insertion_order": (i * 13) % ENTRIES,
                "priority": i % 10,
            })
        })
        .collect();
    json!({"spec": "chara_card_v2", "data": {
        "name": "Bench", "system_prompt": "{{original}} Stay as {{char}}.",
        "post_history_instructions": "Answer {{user}} briefly.",
        "character_book": {"scan_depth": 4, "token_budget": 2_000, "entries": entries}
    }})
}

#[tokio::main]
async fn main() {
    builder_alone();
    support::on_each_database("context", |label, url, data| async move {
        run(label, &url, &data).await
    })
    .await;
}

fn builder_alone() {
    let card = card();
    let book = app::domain::card::book(&card);
    let (card_system, post_history) = app::domain::card::card_prompts(&card);
    let turns: Vec<Turn> = (0..MESSAGES)
        .map(|i| Turn {
            role: if i % 2 == 0 { Role::User } else { Role::Model },
            text: message(i),
        })
        .collect();
    let sources = Sources {
        system: "You are Bench, a character in an interactive story.",
        card_system: card_system.as_deref(),
        post_history: post_history.as_deref(),
        char_name: "Bench",
        user_name: "You",
        book: &book,
        summary: None,
        turns: &turns,
        older: false,
    };
    let mut times = Vec::with_capacity(RUNS);
    let mut built = None;
    for round in 0..RUNS + 50 {
        let t = Instant::now();
        let b = context::build(&sources, BUDGET);
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if round >= 50 {
            times.push(took);
        }
        built = Some(b);
    }
    let seen = built.unwrap().seen;
    println!(
        "builder alone: {MESSAGES} messages in memory, {ENTRIES} lorebook entries, budget {BUDGET}: \
         {} messages and {} entries sent, {} tokens",
        seen.turns,
        seen.lore.len(),
        seen.total
    );
    assert!(seen.total <= BUDGET && !seen.lore.is_empty());
    report("context::build", times);
}

async fn run(label: &str, url: &str, data: &std::path::Path) {
    println!("{label}: {MESSAGES} messages in one chat, {ENTRIES}-entry lorebook, {DB_RUNS} timed preparations");
    let env = support::base_env(url, data);
    let base = support::start_in_process(&env).await;
    let db = Db::connect(url).await.unwrap();
    let (client, _) = support::signed_in(&base).await;
    let owner = UserId(support::user_id(&client, &base).await);
    let character = support::save_character(&client, &base, "Bench").await;
    app::with_pool!(&db, pool => {
        sqlx::query("UPDATE characters SET card = $1 WHERE id = $2")
            .bind(card().to_string())
            .bind(&character)
            .execute(pool)
            .await
            .unwrap();
    });
    // Each message follows the one before it.
    let mut rows: Vec<NewRow> = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        rows.push(NewRow {
            id: app::infra::new_id(),
            parent: rows.last().map(|r: &NewRow| r.id.clone()),
            role: if i % 2 == 0 {
                MessageRole::User
            } else {
                MessageRole::Assistant
            },
            content: message(i),
            status: MessageStatus::Complete,
            created_at: 1_700_000_000_000 + i as i64,
            provider: None,
            input_tokens: None,
            output_tokens: None,
        });
    }
    let head = rows.last().unwrap().id.clone();
    let answers = rows[rows.len() - 2].id.clone();
    let party = Party {
        column: "character_id",
        key: character.clone(),
    };
    let sid = app::chat::sessions::made_with(&db, &owner, &party, "Bench", &rows, &head)
        .await
        .unwrap()
        .unwrap();
    let session = app::chat::store::find_session(&db, &owner, &sid)
        .await
        .unwrap()
        .unwrap();

    let mut times = Vec::with_capacity(DB_RUNS);
    let mut sent = 0;
    for round in 0..DB_RUNS + 20 {
        let t = Instant::now();
        let request =
            app::chat::seen::request_in(&db, BUDGET, &owner, &session, Some(&answers), None, &head)
                .await
                .unwrap();
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if round >= 20 {
            times.push(took);
        }
        sent = request.0.history.len();
    }
    println!("  {sent} messages sent of {MESSAGES}");
    report("seen::request_in (read, build, record)", times);
}
