//! Bounded reads: the chat opens with its latest page and loads earlier pages by `seq`; the
//! dashboard lists characters a page at a time by keyset on (created_at, id). Every item comes
//! exactly once, in order; another user's session or cursor is not found; a `limit` above the
//! largest page is clamped (not refused); the chat page's HTML holds only the latest page.

use crate::common::*;
use app::auth::{GetCurrentUser, UserId};
use app::characters::{ListCharacterPage, MAX_PAGE, PAGE};
use app::chat::{EarlierMessages, MessageRole, MessageStatus};
use app::error::AppError;

on_both_backends!(
    chat_pages_hold_every_message_once_in_order,
    character_pages_hold_every_character_once_newest_first,
    another_users_session_and_cursor_are_not_found,
    the_chat_page_html_holds_only_the_latest_page
);

/// The chat page size (`app::chat::service::PAGE`).
const CHAT_PAGE: usize = 50;

async fn me(app: &TestApp) -> UserId {
    UserId(app.call(GetCurrentUser {}).await.unwrap().unwrap().id)
}

/// A chat with `n` messages after its greeting, added through the store; returns the character's
/// and the session's ids.
async fn long_chat(app: &TestApp, n: usize) -> (String, String) {
    let character = save_character(app, "Talker").await;
    let session = open_chat(app, &character).await.session_id;
    for i in 1..=n {
        app::chat::store::insert_message(
            &app.db,
            &session,
            MessageRole::User,
            &format!("message number {i:04}"),
            MessageStatus::Complete,
        )
        .await
        .unwrap();
    }
    (character, session)
}

async fn chat_pages_hold_every_message_once_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let n = 2 * CHAT_PAGE + 7;
    let (character, session) = long_chat(&app, n).await;

    let view = open_chat(&app, &character).await;
    assert_eq!(view.messages.len(), CHAT_PAGE);
    assert_eq!(
        view.messages.last().unwrap().content,
        format!("message number {n:04}")
    );
    let mut seen = view.messages;
    let mut before = view.earlier;
    while let Some(b) = before {
        let page = app
            .call(EarlierMessages {
                session_id: session.clone(),
                before: b,
            })
            .await
            .unwrap();
        assert!(page.messages.len() <= CHAT_PAGE);
        seen.splice(0..0, page.messages);
        before = page.earlier;
    }
    // The greeting, then every message, once, in the order written.
    assert_eq!(seen.len(), n + 1);
    assert_eq!(seen[0].role, MessageRole::Assistant);
    for (i, m) in seen[1..].iter().enumerate() {
        assert_eq!(m.content, format!("message number {:04}", i + 1));
    }
    // Before the first message there is nothing; a nonsense cursor is refused.
    let first = app
        .call(EarlierMessages {
            session_id: session.clone(),
            before: 1,
        })
        .await
        .unwrap();
    assert!(first.messages.is_empty() && first.earlier.is_none());
    let refused = app
        .refusal(EarlierMessages {
            session_id: session.clone(),
            before: 0,
        })
        .await;
    assert!(matches!(refused, AppError::BadRequest(_)), "{refused:?}");
}

async fn character_pages_hold_every_character_once_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let owner = me(&app).await;
    // Many in the same millisecond: the id breaks the ties, and a page boundary among them is exact.
    let spec = draft("Many")
        .with_story(
            &serde_json::from_value(app::infra::llm::offline::write_character(
                &draft("Many").parse_seed().unwrap(),
                0,
            ))
            .unwrap(),
        )
        .parse_spec()
        .unwrap();
    let n = 2 * PAGE as usize + 5;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(
            app::characters::store::insert(&app.db, &owner, &spec)
                .await
                .unwrap(),
        );
    }

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = app
            .call(ListCharacterPage {
                after: after.clone(),
                limit: None,
            })
            .await
            .unwrap();
        assert!(page.characters.len() <= PAGE as usize);
        seen.extend(page.characters);
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), n);
    let mut unique: Vec<&str> = seen.iter().map(|c| c.id.as_str()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), n, "every character exactly once");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)),
        "newest first, ties by id"
    );

    // A limit above the largest page is clamped to it, not refused; zero asks for one.
    for _ in 0..(MAX_PAGE as usize + 10 - n) {
        app::characters::store::insert(&app.db, &owner, &spec)
            .await
            .unwrap();
    }
    let big = app
        .call(ListCharacterPage {
            after: None,
            limit: Some(10_000),
        })
        .await
        .unwrap();
    assert_eq!(big.characters.len(), MAX_PAGE as usize);
    assert!(big.next.is_some());
    let small = app
        .call(ListCharacterPage {
            after: None,
            limit: Some(0),
        })
        .await
        .unwrap();
    assert_eq!(small.characters.len(), 1);
}

async fn another_users_session_and_cursor_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    save_character(&app, "Mine").await;
    // Someone else's character and chat, made through the store.
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    let other = UserId(other.id);
    assert_ne!(me(&app).await, other);
    let spec = draft("Theirs")
        .with_story(
            &serde_json::from_value(app::infra::llm::offline::write_character(
                &draft("Theirs").parse_seed().unwrap(),
                0,
            ))
            .unwrap(),
        )
        .parse_spec()
        .unwrap();
    let character = app::characters::store::insert(&app.db, &other, &spec)
        .await
        .unwrap();
    let session = app::chat::store::open_session(&app.db, &other, &character)
        .await
        .unwrap()
        .unwrap();
    for before in [1, 2, 1000] {
        assert_eq!(
            app.refusal(EarlierMessages {
                session_id: session.clone(),
                before,
            })
            .await,
            AppError::NotFound
        );
    }
    for after in [character, "missing".to_string(), "x".repeat(100)] {
        assert_eq!(
            app.refusal(ListCharacterPage {
                after: Some(after),
                limit: None,
            })
            .await,
            AppError::NotFound
        );
    }
}

async fn the_chat_page_html_holds_only_the_latest_page(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let n = CHAT_PAGE + 20;
    let (character, session) = long_chat(&app, n).await;
    let html = app
        .client
        .get(app.url(&format!("/characters/{character}/chat")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        html.matches("data-testid=\"message\"").count(),
        CHAT_PAGE,
        "only the latest page is rendered"
    );
    let oldest_shown = n - CHAT_PAGE + 1;
    assert!(html.contains(&format!("message number {n:04}")));
    assert!(html.contains(&format!("message number {oldest_shown:04}")));
    // Nor is anything older in the page, rendered or in the hydration data.
    assert!(!html.contains(&format!("message number {:04}", oldest_shown - 1)));
    assert!(!html.contains("message number 0001"));
    // The earlier page is a plain link that works without JavaScript.
    let seq = oldest_shown + 1; // the greeting is message 1
    let link = format!("/chats/{session}?before={seq}");
    assert!(html.contains(&link), "a link to the earlier page");
    let earlier = app
        .client
        .get(app.url(&link))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The greeting and the messages before the latest page.
    assert_eq!(
        earlier.matches("data-testid=\"message\"").count(),
        n - CHAT_PAGE + 1
    );
    assert!(
        earlier.contains(&format!("/chats/{session}\"")),
        "a link back"
    );
    assert!(earlier.contains(&format!("message number {:04}", oldest_shown - 1)));
    assert!(!earlier.contains(&format!("message number {n:04}")));
}
