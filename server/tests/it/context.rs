//! The context a chat reply is written from, on SQLite and Postgres, against the mock model: an
//! imported card's own system prompt and post-history instructions (macros filled in), its
//! lorebook entries brought up by keys in the latest messages, the newest messages that fit the
//! configured budget, and "what the model saw" — the same prompt shown part by part, to its owner
//! only.

use crate::branches::{app_with_mock, say, text, turns_of};
use crate::common::*;
use crate::reliability::with;
use app::chat::{ContinueReply, PromptView, SaveSummary, SeenPrompt, ViewChat};
use app::error::AppError;
use mock_llm::MockLlm;
use serde_json::{json, Value};

on_both_backends!(
    a_reply_is_written_from_the_card_and_what_the_model_saw_is_shown,
    a_long_chat_sends_the_newest_messages_that_fit,
    a_running_summary_is_written_as_the_window_slides_and_can_be_corrected,
    one_server_writes_a_summary_at_a_time_and_a_branch_knows_its_own,
);

/// A card with its own prompts and a lorebook.
fn card() -> Value {
    json!({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Ilse",
            "description": "{{char}} keeps the lighthouse on the northern cape.",
            "personality": "quiet, watchful",
            "scenario": "A storm is coming.",
            "first_mes": "You came in this weather?",
            "mes_example": "",
            "system_prompt": "{{original}}\nNever break character, {{char}}.",
            "post_history_instructions": "Answer {{user}} in under fifty words.",
            "character_book": {"entries": [
                {"keys": ["lamp"], "content": "LORE-LAMP: the lamp is a hundred years old.", "insertion_order": 2, "comment": "The lamp"},
                {"keys": [], "constant": true, "content": "LORE-CAPE: the cape is always cold.", "insertion_order": 0, "name": "Cape"},
                {"keys": ["storm"], "secondary_keys": ["night"], "selective": true, "content": "LORE-STORM: storms come at night.", "insertion_order": 1},
                {"keys": ["harbour"], "content": "LORE-HARBOUR: the harbour is empty.", "insertion_order": 3},
                {"keys": ["lamp"], "enabled": false, "content": "LORE-OFF: never sent.", "insertion_order": 4}
            ]}
        }
    })
}

/// Imports `card` and saves its character (the sections cards lack filled in): its id.
async fn import(app: &TestApp, card: &Value) -> String {
    let res = app
        .upload_request(
            &app.client,
            "application/json",
            "ilse.json",
            serde_json::to_vec(card).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let import: app::characters::CardImport = result(res).await.unwrap();
    let full = full_draft("Ilse");
    let mut draft = import.draft.clone();
    draft.age = full.age;
    draft.start_options = full.start_options;
    draft.endings = full.endings;
    app.call(app::characters::SaveCharacter {
        draft,
        import: Some(import.id),
    })
    .await
    .unwrap()
}

async fn new_chat(app: &TestApp, character: &str) -> String {
    crate::chats::start(app, character).await.session_id
}

/// The system text and the turns (role, text) of the model's last request for a reply (not a
/// summary, which may follow a reply in the background).
fn last_request(mock: &MockLlm) -> (String, Vec<(String, String)>) {
    let requests = mock.requests();
    let body = requests
        .iter()
        .rev()
        .map(|r| &r.body)
        .find(|b| {
            !b["systemInstruction"]["parts"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("running summary")
        })
        .expect("a model request for a reply");
    let system = body["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let turns = turns_of(body);
    (system, turns)
}

async fn a_reply_is_written_from_the_card_and_what_the_model_saw_is_shown(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    app.sign_in_local().await;
    let character = import(&app, &card()).await;
    let sid = new_chat(&app, &character).await;
    mock.push(text("It is lit."));
    let reply = say(&app, &sid, "Is the lamp lit? The storm is near.").await;

    // The card's system prompt around ours, its lorebook's entries brought up (the storm's needs
    // "night" too), in their order, before the character's description.
    let (system, turns) = last_request(&mock);
    let at = |needle: &str| system.find(needle);
    assert!(at("You are Ilse").is_some(), "{system}");
    assert!(at("Never break character, Ilse.").is_some(), "{system}");
    assert!(at("LORE-CAPE").unwrap() < at("LORE-LAMP").unwrap());
    assert!(at("LORE-LAMP").unwrap() < at("You are Ilse").unwrap());
    for absent in ["LORE-STORM", "LORE-HARBOUR", "LORE-OFF", "{{"] {
        assert!(at(absent).is_none(), "{absent} in {system}");
    }
    // The instructions follow the last message; the message itself is stored as written.
    let name: String = app::with_pool!(&app.db, pool => {
        sqlx::query_scalar("SELECT display_name FROM users").fetch_one(pool).await.unwrap()
    });
    let (role, last) = turns.last().unwrap();
    assert_eq!(role, "user");
    assert_eq!(
        last,
        &format!("Is the lamp lit? The storm is near.\n\nAnswer {name} in under fifty words.")
    );
    assert_eq!(turns[0].1, "You came in this weather?");

    // What the model saw: the same, part by part.
    let seen: PromptView = app
        .call(SeenPrompt {
            session_id: sid.clone(),
            message_id: reply.clone(),
        })
        .await
        .unwrap();
    let s = &seen.seen;
    assert!(s.card_system);
    assert!(s.system.contains("Never break character, Ilse."));
    let lore: Vec<(&str, &str)> = s
        .lore
        .iter()
        .map(|l| (l.name.as_str(), l.key.as_str()))
        .collect();
    assert_eq!(lore, [("Cape", ""), ("The lamp", "lamp")]);
    assert_eq!(
        s.after.as_deref(),
        Some(format!("Answer {name} in under fifty words.").as_str())
    );
    let texts: Vec<&str> = seen.turns.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "You came in this weather?",
            "Is the lamp lit? The storm is near."
        ]
    );
    assert_eq!((s.turns, s.turns_left_out, s.older_left_out), (2, 0, false));
    assert!(s.total <= s.budget && s.budget == 32_000, "{s:?}");

    // Said at night, the storm's entry comes up too; the next reply's record is its own.
    mock.push(text("Aye."));
    let second = say(&app, &sid, "The storm comes at night.").await;
    let (system, _) = last_request(&mock);
    assert!(system.contains("LORE-STORM"), "{system}");
    let again: PromptView = app
        .call(SeenPrompt {
            session_id: sid.clone(),
            message_id: second.clone(),
        })
        .await
        .unwrap();
    assert_eq!(again.turns.len(), 4);
    assert_eq!(again.seen.lore.len(), 3);

    // A continued reply's record shows what it had, and the request to go on.
    mock.push(text(" And more."));
    let events = app
        .stream(ContinueReply {
            session_id: sid.clone(),
            message_id: second.clone(),
        })
        .await
        .rest()
        .await;
    assert!(
        matches!(events.last(), Some(app::chat::ChatEvent::Finished { .. })),
        "{events:?}"
    );
    let continued: PromptView = app
        .call(SeenPrompt {
            session_id: sid.clone(),
            message_id: second.clone(),
        })
        .await
        .unwrap();
    assert_eq!(continued.seen.continued.as_deref(), Some("Aye."));
    let last_two: Vec<&str> = continued.turns[continued.turns.len() - 2..]
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(last_two[0], "Aye.");

    // The page shows it without script; the chat links to it.
    let page = app
        .client
        .get(app.url(&format!("/chats/{sid}?seen={reply}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("What the model saw"));
    assert!(html.contains("LORE-LAMP: the lamp is a hundred years old."));
    assert!(html.contains("Answer "));
    let chat = app
        .client
        .get(app.url(&format!("/chats/{sid}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(chat.contains(&format!("/chats/{sid}?seen={reply}")));

    // Nothing for a greeting; nothing for anyone else.
    let greeting = app
        .call(ViewChat {
            session_id: Some(sid.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap()
        .messages[0]
        .id
        .clone();
    let none = app
        .call(SeenPrompt {
            session_id: sid.clone(),
            message_id: greeting,
        })
        .await;
    assert_eq!(none, Err(AppError::NotFound));
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let theirs = other
        .call(SeenPrompt {
            session_id: sid.clone(),
            message_id: reply.clone(),
        })
        .await;
    assert_eq!(theirs, Err(AppError::NotFound));
    let page = other
        .client
        .get(other.url(&format!("/chats/{sid}?seen={reply}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
}

/// A SillyTavern chat of `n` messages, each long enough to count.
fn long_chat(n: usize) -> Vec<u8> {
    let mut out = String::from("{\"user_name\":\"You\",\"character_name\":\"Ilse\"}\n");
    for i in 0..n {
        let line = json!({
            "name": if i % 2 == 0 { "You" } else { "Ilse" },
            "is_user": i % 2 == 0,
            "mes": format!("Message number {i} of the long chat, about the lamp and the sea and the night."),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

async fn a_long_chat_sends_the_newest_messages_that_fit(backend: Backend) {
    let mock = MockLlm::start().await;
    let env = crate::reliability::gemini_env(&mock);
    let app = spawn_app_with(
        backend,
        &with(&env, &[("CHAT_CONTEXT_TOKENS", "1000")]),
        |_| {},
    )
    .await;
    app.sign_in_local().await;
    let character = import(&app, &card()).await;
    // 601 messages: the chat ends with a reply, and the message sent is the 602nd.
    let res = app
        .chat_import_request(&app.client, "application/json", &character, long_chat(601))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sid: String = result(res).await.unwrap();
    mock.push(text("Still here."));
    let reply = say(&app, &sid, "What was the first thing I said?").await;

    let (_, turns) = last_request(&mock);
    let seen: PromptView = app
        .call(SeenPrompt {
            session_id: sid.clone(),
            message_id: reply,
        })
        .await
        .unwrap();
    let s = &seen.seen;
    assert_eq!(s.budget, 1000);
    assert!(s.total <= 1000, "{s:?}");
    // Far fewer than all were sent, the newest, in order, and the model got those.
    assert!(s.turns > 5 && s.turns < 100, "{}", s.turns);
    assert_eq!(s.turns, turns.len());
    assert_eq!(seen.turns.len(), s.turns);
    assert_eq!(
        seen.turns.last().unwrap().text,
        "What was the first thing I said?"
    );
    assert_eq!(
        seen.turns[seen.turns.len() - 2].text,
        "Message number 600 of the long chat, about the lamp and the sea and the night."
    );
    for (seen, (_, sent)) in seen.turns.iter().zip(&turns).take(seen.turns.len() - 1) {
        assert_eq!(&seen.text, sent);
    }
    // Read a page at a time: older ones were not even read.
    assert!(s.turns_left_out > 0 && s.older_left_out, "{s:?}");
}

async fn summary_of(app: &TestApp, sid: &str) -> String {
    app.call(ViewChat {
        session_id: Some(sid.into()),
        character_id: None,
        fresh: false,
    })
    .await
    .unwrap()
    .summary
}

/// Waits until the mock has had `n` requests (a summary is written after its reply, in the
/// background), then a moment for what follows them to be stored.
async fn requests_reach(mock: &MockLlm, n: usize) {
    for _ in 0..200 {
        if mock.requests().len() >= n {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{} model requests, not {n}", mock.requests().len());
}

async fn a_running_summary_is_written_as_the_window_slides_and_can_be_corrected(backend: Backend) {
    let mock = MockLlm::start().await;
    let env = crate::reliability::gemini_env(&mock);
    let app = spawn_app_with(
        backend,
        &with(&env, &[("CHAT_CONTEXT_TOKENS", "3000")]),
        |_| {},
    )
    .await;
    app.sign_in_local().await;
    let character = import(&app, &card()).await;
    let res = app
        .chat_import_request(&app.client, "application/json", &character, long_chat(121))
        .send()
        .await
        .unwrap();
    let sid: String = result(res).await.unwrap();
    assert_eq!(summary_of(&app, &sid).await, "");

    // The window has slid past many messages: after the reply, a summary is asked for. The
    // model fails it: the reply is unharmed, no summary is kept, and the next reply asks again.
    let before = mock.requests().len();
    mock.push(text("Still here."));
    mock.push(mock_llm::Reply::Error {
        code: 400,
        status: "INVALID_ARGUMENT".into(),
        message: "no".into(),
        retry_delay: None,
        quota_id: None,
    });
    say(&app, &sid, "Do you remember the beginning?").await;
    requests_reach(&mock, before + 2).await;
    assert_eq!(summary_of(&app, &sid).await, "");

    mock.push(text("I do."));
    mock.push(text("SUMMARY-ONE: they talked of the lamp."));
    say(&app, &sid, "Tell me again.").await;
    requests_reach(&mock, before + 4).await;
    assert_eq!(
        summary_of(&app, &sid).await,
        "SUMMARY-ONE: they talked of the lamp."
    );
    // The summary was asked from what fell out, the oldest first, with none before it.
    let asked = &mock.requests()[before + 3].body;
    let system = asked["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(system.contains("running summary"), "{system}");
    let said = asked["contents"][0]["parts"][0]["text"].as_str().unwrap();
    assert!(said.contains("(none yet)"), "{said}");
    let first = said
        .find("Message number 0 of the long chat")
        .expect("the first message");
    assert!(first < said.find("Message number 1 of the long chat").unwrap());
    // Usage counts it, as a chat call.
    let calls: i64 = count(
        &app,
        "SELECT COUNT(*) FROM generations WHERE kind = 'chat_summary'",
    )
    .await;
    assert_eq!(calls, 2);

    // The next reply's prompt carries it; the window moved by two, so no new summary yet.
    mock.push(text("Again."));
    let reply = say(&app, &sid, "And now?").await;
    let (system, _) = last_request(&mock);
    assert!(
        system.contains("SUMMARY-ONE: they talked of the lamp."),
        "{system}"
    );
    requests_reach(&mock, before + 5).await;
    assert_eq!(mock.requests().len(), before + 5);
    let seen: PromptView = app
        .call(SeenPrompt {
            session_id: sid.clone(),
            message_id: reply,
        })
        .await
        .unwrap();
    assert_eq!(
        seen.seen.summary.as_deref(),
        Some("SUMMARY-ONE: they talked of the lamp.")
    );
    assert!(seen.seen.total <= 3000);

    // Corrected by its owner: shown, and sent from then on.
    app.call(SaveSummary {
        session_id: sid.clone(),
        text: "EDITED: the lamp is lit at dusk.".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        summary_of(&app, &sid).await,
        "EDITED: the lamp is lit at dusk."
    );
    mock.push(text("Yes."));
    say(&app, &sid, "Is it?").await;
    let (system, _) = last_request(&mock);
    assert!(
        system.contains("EDITED: the lamp is lit at dusk."),
        "{system}"
    );
    assert!(!system.contains("SUMMARY-ONE"), "{system}");
    // The chat page shows it in a form that saves without script.
    let html = app
        .client
        .get(app.url(&format!("/chats/{sid}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("EDITED: the lamp is lit at dusk."));
    assert!(html.contains("action=\"/api/chat/summary\""));

    // Empty is refused; someone else's chat is not found.
    let empty = app
        .call(SaveSummary {
            session_id: sid.clone(),
            text: "  ".into(),
        })
        .await;
    assert!(
        matches!(
            empty,
            Err(AppError::BadRequest(_)) | Err(AppError::Invalid(_))
        ),
        "{empty:?}"
    );
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let theirs = other
        .call(SaveSummary {
            session_id: sid.clone(),
            text: "Mine now.".into(),
        })
        .await;
    assert_eq!(theirs, Err(AppError::NotFound));
    assert_eq!(
        summary_of(&app, &sid).await,
        "EDITED: the lamp is lit at dusk."
    );
}

async fn one_server_writes_a_summary_at_a_time_and_a_branch_knows_its_own(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let res = app
        .chat_import_request(&app.client, "application/json", &character, long_chat(6))
        .send()
        .await
        .unwrap();
    let sid: String = result(res).await.unwrap();
    let db = &app.db;

    // The lease: taken once, refused while held, given up only by its holder.
    let lease = app::chat::summary::claim(db, &sid)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(app::chat::summary::claim(db, &sid).await.unwrap(), None);
    app::chat::summary::release(db, &sid, lease - 1)
        .await
        .unwrap();
    assert_eq!(
        app::chat::summary::claim(db, &sid).await.unwrap(),
        None,
        "not its holder"
    );
    app::chat::summary::release(db, &sid, lease).await.unwrap();
    assert!(app::chat::summary::claim(db, &sid).await.unwrap().is_some());

    // The branch shown, and a second version of its third message: a message of one is not an
    // ancestor of the other's.
    let shown = app
        .call(ViewChat {
            session_id: Some(sid.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap()
        .messages;
    let ids: Vec<&str> = shown.iter().map(|m| m.id.as_str()).collect();
    let session = sid.clone();
    let session = session.as_str();
    let descends = move |from: String, ancestor: String| async move {
        app::chat::store::descends(db, session, &from, &ancestor, 100)
            .await
            .unwrap()
    };
    assert!(descends(ids[5].into(), ids[1].into()).await);
    assert!(descends(ids[5].into(), ids[5].into()).await);
    assert!(!descends(ids[1].into(), ids[5].into()).await);
    let page = app
        .call(app::chat::EditMessage {
            session_id: sid.clone(),
            message_id: ids[2].into(),
            text: "Another way.".into(),
        })
        .await
        .unwrap();
    let other = page.messages.last().unwrap().id.clone();
    assert_ne!(other, ids[2]);
    assert!(descends(other.clone(), ids[1].into()).await);
    assert!(
        !descends(other.clone(), ids[4].into()).await,
        "another branch"
    );
    assert!(!descends(ids[5].into(), other).await, "another branch");
    // Bounded: too far back is not found.
    assert!(!app::chat::store::descends(db, &sid, ids[5], ids[0], 2)
        .await
        .unwrap());
}
