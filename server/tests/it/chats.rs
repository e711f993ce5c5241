//! Several chats per character (and per twin), on SQLite and Postgres: opening a character's chat
//! writes nothing until the first thing is done in it; a new chat is made once however often its
//! first action is sent; chats are listed, renamed, moved to the trash and back, removed for good
//! after their days there; a branch is a new chat holding a conversation up to a message. Someone
//! else's chats are not found, whatever is asked of them.

use crate::branches::{app_with_mock, last_prompt, say, text};
use crate::common::*;
use app::chat::{
    BranchChat, ChatView, ListChats, OpenChat, OpenTwinChat, RenameChat, RestoreChat, SendMessage,
    StartChat, TrashChat, TrashedChats, ViewChat,
};
use app::error::AppError;
use mock_llm::MockLlm;
use serde_json::Value;

on_both_backends!(
    opening_a_chat_writes_nothing_until_the_first_message,
    several_chats_with_one_character_are_listed_apart,
    a_chat_is_renamed_trashed_restored_and_purged,
    a_branch_is_a_new_chat_up_to_the_message,
    the_chat_with_ones_twin_can_be_many_too,
    a_user_has_at_most_so_many_chats_with_one_character,
    a_chat_goes_out_as_sillytavern_jsonl_and_comes_back,
    every_chat_is_searched_and_a_result_opens_at_its_message,
    messages_are_shown_formatted_and_what_they_hold_never_runs,
    a_chat_moved_to_the_trash_stops_its_reply,
);

/// The chat page's data for the latest chat with `character` (a new one if there is none).
async fn latest(app: &TestApp, character: &str) -> ChatView {
    app.call(ViewChat {
        session_id: None,
        character_id: Some(character.into()),
        fresh: false,
    })
    .await
    .unwrap()
}

/// A new chat with `character`, as its page shows it and then made.
pub(crate) async fn start(app: &TestApp, character: &str) -> ChatView {
    let shown = app
        .call(ViewChat {
            session_id: None,
            character_id: Some(character.into()),
            fresh: true,
        })
        .await
        .unwrap();
    assert!(!shown.saved);
    app.call(StartChat {
        session_id: shown.session_id,
        character_id: Some(character.into()),
    })
    .await
    .unwrap()
}

async fn chats_with(app: &TestApp, character: &str) -> Vec<app::chat::ChatSummary> {
    app.call(ListChats {
        with: Some(character.into()),
        after: None,
    })
    .await
    .unwrap()
    .chats
}

async fn opening_a_chat_writes_nothing_until_the_first_message(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let greeting = app
        .call(app::characters::GetCharacter {
            id: character.clone(),
        })
        .await
        .unwrap()
        .draft
        .opening_line;

    // The page and its data show the greeting, and nothing is written.
    let html = app.html(&format!("/characters/{character}/chat")).await;
    assert!(html.contains(&greeting), "the greeting is shown");
    let shown = latest(&app, &character).await;
    assert!(!shown.saved);
    assert_eq!(shown.title, "New chat");
    assert_eq!(shown.messages.len(), 1);
    assert_eq!(shown.messages[0].content, greeting);
    assert!(uuid::Uuid::parse_str(&shown.session_id).is_ok());
    app.html(&format!("/characters/{character}/chat/new")).await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_messages").await, 0);

    // Nothing can be sent to a chat not made yet.
    let refused = app
        .refusal(SendMessage {
            session_id: shown.session_id.clone(),
            text: "Hello?".into(),
            after: None,
        })
        .await;
    assert_eq!(refused, AppError::NotFound);

    // Its first action, sent twice at once (a double click, a retry), makes one chat.
    let make = || StartChat {
        session_id: shown.session_id.clone(),
        character_id: Some(character.clone()),
    };
    let (a, b) = tokio::join!(app.call(make()), app.call(make()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.session_id, shown.session_id, "the id the page showed");
    assert_eq!(a, b);
    assert!(a.saved);
    assert_eq!(a.title, "Chat with Mira");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_messages").await, 1);
    assert_eq!(a.messages[0].content, greeting);
    assert_ne!(a.messages[0].id, shown.messages[0].id, "ids made anew");

    let (events, _) = send_message(&app, &a.session_id, "Hello there").await;
    assert!(!deltas(&events).is_empty());
    // Opened again, it is the latest chat, and its page is its own address too.
    let again = latest(&app, &character).await;
    assert_eq!(again.session_id, a.session_id);
    assert_eq!(again.messages.len(), 3);
    let html = app.html(&format!("/chats/{}", a.session_id)).await;
    assert!(html.contains("Hello there"));

    // A malformed id is refused; an id of someone else's chat is not found.
    let refused = app
        .call(StartChat {
            session_id: "not-a-uuid".into(),
            character_id: Some(character.clone()),
        })
        .await;
    assert!(
        matches!(refused, Err(AppError::BadRequest(_))),
        "{refused:?}"
    );
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let theirs = save_character(&other, "Theirs").await;
    let refused = other
        .call(StartChat {
            session_id: a.session_id.clone(),
            character_id: Some(theirs),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 1);

    // The id of a chat with one character is not made again with another.
    let kai = save_character(&app, "Kai").await;
    let refused = app
        .call(StartChat {
            session_id: a.session_id.clone(),
            character_id: Some(kai),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));

    // `chat/open` (the API's) gives the latest chat, or makes one when there is none: at once
    // from two tabs, one.
    assert_eq!(open_chat(&app, &character).await.session_id, a.session_id);
    let fresh = save_character(&app, "Ilse").await;
    let open = || OpenChat {
        character_id: fresh.clone(),
    };
    let (x, y) = tokio::join!(app.call(open()), app.call(open()));
    assert_eq!(x.unwrap().session_id, y.unwrap().session_id);
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM chat_sessions WHERE character_id = '{fresh}'")
        )
        .await,
        1
    );
}

async fn several_chats_with_one_character_are_listed_apart(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let other_character = save_character(&app, "Kai").await;
    let first = start(&app, &character).await;
    send_message(&app, &first.session_id, "About the lighthouse").await;
    let second = start(&app, &character).await;
    assert_ne!(first.session_id, second.session_id);
    assert_eq!(second.title, "Chat 2 with Mira");
    assert_eq!(
        second.messages.len(),
        1,
        "a new chat begins with the greeting"
    );
    send_message(&app, &second.session_id, "About the storm").await;
    start(&app, &other_character).await;

    // Listed apart, most recently active first, each with its last message.
    let listed = chats_with(&app, &character).await;
    assert_eq!(
        listed
            .iter()
            .map(|c| c.session_id.as_str())
            .collect::<Vec<_>>(),
        [second.session_id.as_str(), first.session_id.as_str()]
    );
    assert!(listed.iter().all(|c| c.with == "Mira"));
    assert_eq!(listed[1].title, "Chat with Mira");
    let all = app
        .call(ListChats {
            with: None,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(all.chats.len(), 3);

    // Each holds its own conversation; the page opens the latest.
    let read = |id: &str| {
        app.call(ViewChat {
            session_id: Some(id.into()),
            character_id: None,
            fresh: false,
        })
    };
    let one = read(&first.session_id).await.unwrap();
    let two = read(&second.session_id).await.unwrap();
    assert_eq!(one.messages[1].content, "About the lighthouse");
    assert_eq!(two.messages[1].content, "About the storm");
    assert!(!one.messages.iter().any(|m| m.content == "About the storm"));
    assert_eq!(latest(&app, &character).await.session_id, second.session_id);
    // Writing in the older one makes it the latest.
    send_message(&app, &first.session_id, "Back to the lighthouse").await;
    assert_eq!(latest(&app, &character).await.session_id, first.session_id);
    let html = app.html(&format!("/chats?with={character}")).await;
    assert!(html.contains("Chat 2 with Mira") && html.contains("Back to the lighthouse"));

    // Someone else's character lists nothing of theirs: not found.
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let refused = other
        .call(ListChats {
            with: Some(character.clone()),
            after: None,
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let refused = other
        .call(ViewChat {
            session_id: Some(first.session_id.clone()),
            character_id: None,
            fresh: false,
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
}

async fn a_chat_is_renamed_trashed_restored_and_purged(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let kept = start(&app, &character).await;
    let chat = start(&app, &character).await;
    let (events, _) = send_message(&app, &chat.session_id, "Remember this").await;
    let Some(app::chat::ChatEvent::Accepted { reply_id, .. }) = events.first().cloned() else {
        panic!("{events:?}")
    };
    let sid = chat.session_id.clone();

    // Renamed, within the title's bounds.
    app.call(RenameChat {
        session_id: sid.clone(),
        title: "  Our trip  ".into(),
    })
    .await
    .unwrap();
    assert_eq!(chats_with(&app, &character).await[0].title, "Our trip");
    for bad in ["", "   ", &"x".repeat(101), "two\nlines"] {
        let refused = app
            .call(RenameChat {
                session_id: sid.clone(),
                title: bad.into(),
            })
            .await;
        assert!(matches!(refused, Err(AppError::BadRequest(_))), "{bad:?}");
    }
    assert_eq!(chats_with(&app, &character).await[0].title, "Our trip");

    // To the trash: out of the list, unreadable and unwritable; listed in the trash.
    let gone = app
        .call(TrashChat {
            session_id: sid.clone(),
        })
        .await
        .unwrap();
    assert_eq!(gone, sid);
    let listed = chats_with(&app, &character).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, kept.session_id);
    assert_eq!(latest(&app, &character).await.session_id, kept.session_id);
    let refused = app
        .call(ViewChat {
            session_id: Some(sid.clone()),
            character_id: None,
            fresh: false,
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let refused = app
        .refusal(SendMessage {
            session_id: sid.clone(),
            text: "Anyone?".into(),
            after: None,
        })
        .await;
    assert_eq!(refused, AppError::NotFound);
    // Nor is its reply reached to stop (or follow).
    let refused = app
        .call(app::chat::StopReply {
            reply_id: reply_id.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let trashed = app.call(TrashedChats {}).await.unwrap();
    assert_eq!(trashed.len(), 1);
    assert_eq!(trashed[0].title, "Our trip");
    assert!(app.html("/trash").await.contains("Our trip"));
    let refused = app
        .call(TrashChat {
            session_id: sid.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound), "already in the trash");

    // Back, with everything in it.
    app.call(RestoreChat {
        session_id: sid.clone(),
    })
    .await
    .unwrap();
    let back = app
        .call(ViewChat {
            session_id: Some(sid.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap();
    assert_eq!(back.messages[1].content, "Remember this");
    assert_eq!(back.title, "Our trip");
    assert!(app.call(TrashedChats {}).await.unwrap().is_empty());
    let refused = app
        .call(RestoreChat {
            session_id: sid.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound), "not in the trash");

    // Thirty days in the trash: no longer restorable, then removed with its messages.
    app.call(TrashChat {
        session_id: sid.clone(),
    })
    .await
    .unwrap();
    let long_ago = app::infra::now_ms() - 31 * 24 * 3_600_000;
    app::with_pool!(&app.db, pool => {
        sqlx::query("UPDATE chat_sessions SET deleted_at = $1 WHERE id = $2")
            .bind(long_ago)
            .bind(&sid)
            .execute(pool)
            .await
            .unwrap();
    });
    assert!(app.call(TrashedChats {}).await.unwrap().is_empty());
    let refused = app
        .call(RestoreChat {
            session_id: sid.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    app::chat::service::purge_expired(&app.db).await;
    let left = |table: &str| {
        format!(
            "SELECT COUNT(*) FROM {table} WHERE {} = '{sid}'",
            if table == "chat_sessions" {
                "id"
            } else {
                "session_id"
            }
        )
    };
    assert_eq!(count(&app, &left("chat_sessions")).await, 0);
    assert_eq!(count(&app, &left("chat_messages")).await, 0);
    assert_eq!(
        chats_with(&app, &character).await.len(),
        1,
        "the other kept"
    );

    // Someone else can do none of it.
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let theirs = kept.session_id.clone();
    let refused = other
        .call(RenameChat {
            session_id: theirs.clone(),
            title: "Mine".into(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let refused = other
        .call(TrashChat {
            session_id: theirs.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    assert_eq!(
        chats_with(&app, &character).await[0].title,
        "Chat with Mira"
    );
}

async fn a_branch_is_a_new_chat_up_to_the_message(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let chat = start(&app, &character).await;
    let sid = chat.session_id.clone();
    mock.push(text("The harbour is quiet."));
    let first_reply = say(&app, &sid, "Tell me about the harbour").await;
    mock.push(text("The storm came at night."));
    say(&app, &sid, "And the storm?").await;

    let branch = app
        .call(BranchChat {
            session_id: sid.clone(),
            message_id: first_reply.clone(),
        })
        .await
        .unwrap();
    assert_ne!(branch, sid);
    let view = app
        .call(ViewChat {
            session_id: Some(branch.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap();
    assert_eq!(view.title, "Branch of Chat with Mira");
    assert_eq!(view.character_id, character);
    let texts: Vec<&str> = view.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        texts[1..],
        ["Tell me about the harbour", "The harbour is quiet."]
    );
    assert!(view.messages.iter().all(|m| m.id != first_reply), "copied");
    // The original is unchanged, and the new chat is listed.
    let original = app
        .call(ViewChat {
            session_id: Some(sid.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap();
    assert_eq!(original.messages.len(), 5);
    assert_eq!(chats_with(&app, &character).await[0].session_id, branch);

    // The branch goes its own way: its model sees only its own conversation.
    mock.push(text("Then the boats came home."));
    say(&app, &branch, "What happened next?").await;
    let prompt: String = last_prompt(&mock)
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(prompt.contains("The harbour is quiet."));
    assert!(!prompt.contains("And the storm?"), "{prompt}");
    assert_eq!(original.messages.len(), 5);

    // Not from a message of another chat, nor someone else's.
    let refused = app
        .call(BranchChat {
            session_id: branch.clone(),
            message_id: first_reply.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let refused = other
        .call(BranchChat {
            session_id: sid.clone(),
            message_id: first_reply.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 2);
}

async fn the_chat_with_ones_twin_can_be_many_too(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    // Before there is a twin: a sentence, and nothing written.
    let refused = app
        .call(ViewChat {
            session_id: None,
            character_id: None,
            fresh: false,
        })
        .await;
    assert!(
        matches!(&refused, Err(AppError::BadRequest(m)) if m.contains("Create your twin first")),
        "{refused:?}"
    );
    app.call(app::twins::SaveTwin {
        twin: app::domain::TwinDraft {
            name: "Ada".into(),
            ..Default::default()
        },
    })
    .await
    .unwrap();
    let shown = app
        .call(ViewChat {
            session_id: None,
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap();
    assert!(shown.twin && !shown.saved);
    assert!(app.html("/twin/chat").await.contains("Shades"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 0);
    let first = app.call(OpenTwinChat {}).await.unwrap();
    let second = app
        .call(StartChat {
            session_id: app::infra::new_id(),
            character_id: None,
        })
        .await
        .unwrap();
    assert_ne!(first.session_id, second.session_id);
    assert_eq!(second.title, "Chat 2 with your twin");
    let listed = app
        .call(ListChats {
            with: Some("twin".into()),
            after: None,
        })
        .await
        .unwrap()
        .chats;
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|c| c.character_id.is_none() && c.with == "Ada"));
}

async fn a_user_has_at_most_so_many_chats_with_one_character(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let first = start(&app, &character).await;
    // Fill up to one short of the most, quickly, beside the first.
    let owner: String = app::with_pool!(&app.db, pool => {
        sqlx::query_scalar("SELECT owner_id FROM chat_sessions WHERE id = $1")
            .bind(&first.session_id)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let most = app::chat::sessions::MAX_CHATS;
    for i in 1..most - 1 {
        app::with_pool!(&app.db, pool => {
            sqlx::query(
                "INSERT INTO chat_sessions (id, owner_id, character_id, title, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'filler', $4, $4)",
            )
            .bind(app::infra::new_id())
            .bind(&owner)
            .bind(&character)
            .bind(i)
            .execute(pool)
            .await
            .unwrap();
        });
    }
    let last = start(&app, &character).await;
    assert_eq!(last.title, format!("Chat {most} with Mira"));
    let full = AppError::Conflict(app::chat::sessions::FULL.into());
    let refused = app
        .call(StartChat {
            session_id: app::infra::new_id(),
            character_id: Some(character.clone()),
        })
        .await;
    assert_eq!(refused, Err(full.clone()));
    let refused = app
        .call(BranchChat {
            session_id: first.session_id.clone(),
            message_id: first.messages[0].id.clone(),
        })
        .await;
    assert_eq!(refused, Err(full.clone()));
    // One in the trash makes room; restoring it then would go past the most, so it waits.
    app.call(TrashChat {
        session_id: last.session_id.clone(),
    })
    .await
    .unwrap();
    start(&app, &character).await;
    let refused = app
        .call(RestoreChat {
            session_id: last.session_id.clone(),
        })
        .await;
    assert_eq!(refused, Err(full));
    assert!(app::chat::sessions::FULL.contains(&most.to_string()));
}

async fn a_chat_goes_out_as_sillytavern_jsonl_and_comes_back(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let chat = start(&app, &character).await;
    let sid = chat.session_id.clone();
    send_message(&app, &sid, "Where is the harbour?").await;
    let (events, _) = send_message(&app, &sid, "And the *storm*?").await;
    let Some(app::chat::ChatEvent::Accepted { reply_id, .. }) = events.first().cloned() else {
        panic!("{events:?}")
    };
    // The last reply edited: two versions, the second shown.
    app.call(app::chat::EditMessage {
        session_id: sid.clone(),
        message_id: reply_id.clone(),
        text: "The storm passed *quietly*.".into(),
    })
    .await
    .unwrap();
    app.call(RenameChat {
        session_id: sid.clone(),
        title: "Harbour talk".into(),
    })
    .await
    .unwrap();
    let shown = app
        .call(ViewChat {
            session_id: Some(sid.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap()
        .messages;
    assert_eq!(shown.len(), 5);

    // Out as SillyTavern JSONL: a header, then the branch shown, the versions as swipes.
    let res = app
        .client
        .get(app.url(&format!("/chats/{sid}/chat.jsonl")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/jsonl"));
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("Mira-Harbour-talk.jsonl"));
    let file = res.bytes().await.unwrap().to_vec();
    let lines: Vec<Value> = std::str::from_utf8(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["character_name"], "Mira");
    assert_eq!(lines[1]["mes"], shown[0].content.as_str());
    assert_eq!(lines[2]["is_user"], true);
    assert_eq!(lines[4]["mes"], "And the *storm*?");
    assert_eq!(lines[5]["mes"], shown[4].content.as_str());
    assert_eq!(lines[5]["swipe_id"], 1);
    assert_eq!(lines[5]["swipes"].as_array().unwrap().len(), 2);
    let md = app
        .client
        .get(app.url(&format!("/chats/{sid}/chat.md")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.starts_with("# Harbour talk\n"));
    assert!(md.contains("### You\n\nAnd the *storm*?\n"));
    assert!(md.contains("*(version 2 of 2)*"));

    // Back in, as a new chat with the same conversation and versions.
    let res = app
        .chat_import_request(&app.client, "application/json", &character, file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let imported: String = result(res).await.unwrap();
    assert_ne!(imported, sid);
    let back = app
        .call(ViewChat {
            session_id: Some(imported.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap();
    assert!(
        back.title.starts_with("Imported chat of "),
        "{}",
        back.title
    );
    let described = |ms: &[app::chat::ChatMessage]| {
        ms.iter()
            .map(|m| (m.role, m.content.clone(), m.version, m.versions))
            .collect::<Vec<_>>()
    };
    assert_eq!(described(&back.messages), described(&shown));
    // The other version is there to flip to.
    let flipped = app
        .call(app::chat::ShowVersion {
            session_id: imported.clone(),
            message_id: back.messages[4].id.clone(),
            version: 1,
        })
        .await
        .unwrap();
    assert_eq!(flipped.messages[4].version, 1);
    assert_ne!(flipped.messages[4].content, shown[4].content);

    // A page's form post goes on to the new chat; a bad file comes back with its sentence.
    let res = app
        .chat_import_request(&app.client, "text/html", &character, file)
        .header("referer", app.url(&format!("/chats?with={character}")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert!(location(&res).starts_with("/chats/"));
    let res = app
        .chat_import_request(&app.client, "application/json", &character, b"[1]".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let err: AppError = result::<String>(res).await.unwrap_err();
    assert_eq!(err, AppError::BadRequest("Line 1 is not a message.".into()));
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM chat_sessions").await,
        3,
        "nothing made from a bad file"
    );

    // Nobody else reads it or brings a chat into it.
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let res = other
        .client
        .get(other.url(&format!("/chats/{sid}/chat.jsonl")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = new_client()
        .get(app.url(&format!("/chats/{sid}/chat.md")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// Sends `text` in `session` and finishes its reply; the user's message id.
async fn said(app: &TestApp, session: &str, text: &str) -> String {
    let (events, _) = send_message(app, session, text).await;
    match events.first() {
        Some(app::chat::ChatEvent::Accepted { user_message, .. }) => user_message.id.clone(),
        _ => panic!("{events:?}"),
    }
}

async fn every_chat_is_searched_and_a_result_opens_at_its_message(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let mira = save_character(&app, "Mira").await;
    let kai = save_character(&app, "Kai").await;
    let one = start(&app, &mira).await.session_id;
    let two = start(&app, &kai).await.session_id;
    let keeper = said(&app, &one, "The lighthouse keeper sleeps at noon").await;
    let lamp = said(&app, &two, "Is the Lighthouse lamp lit?").await;
    let gone = said(&app, &two, "A lighthouse note to delete").await;
    app.call(app::chat::DeleteMessage {
        session_id: two.clone(),
        message_id: gone.clone(),
    })
    .await
    .unwrap();
    // An edited question: its first version is kept, off the branch shown.
    let old = said(&app, &one, "Where does the ferry harbour?").await;
    app.call(app::chat::EditMessage {
        session_id: one.clone(),
        message_id: old.clone(),
        text: "Where does the boat dock?".into(),
    })
    .await
    .unwrap();
    // A chat in the trash, and someone else's chat, are never found.
    let trashed = start(&app, &mira).await.session_id;
    let binned = said(&app, &trashed, "A lighthouse in the bin").await;
    app.call(TrashChat {
        session_id: trashed.clone(),
    })
    .await
    .unwrap();
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let theirs = save_character(&other, "Theirs").await;
    let their_chat = start(&other, &theirs).await.session_id;
    let their_message = said(&other, &their_chat, "Their lighthouse").await;

    let search = |q: &str| app.call(app::chat::SearchChats { q: q.into() });
    let ids = |hits: &[app::chat::ChatHit]| {
        hits.iter()
            .map(|h| h.message_id.clone())
            .collect::<Vec<_>>()
    };
    // The user's own messages among them (the offline writer's replies quote the question).
    let asked = |hits: &[app::chat::ChatHit]| {
        hits.iter()
            .filter(|h| h.role == app::chat::MessageRole::User)
            .map(|h| h.message_id.clone())
            .collect::<Vec<_>>()
    };
    // Words found as words or their starts, in any case, in every chat of the user's.
    let found = search("LIGHTHO").await.unwrap();
    let found_ids = ids(&found);
    assert!(
        found_ids.contains(&keeper) && found_ids.contains(&lamp),
        "{found:?}"
    );
    for excluded in [&gone, &binned, &their_message] {
        assert!(!found_ids.contains(excluded), "{found:?}");
    }
    // Nor is what was hidden with the deleted message (its reply, which echoes it).
    assert!(
        !found.iter().any(|h| h.excerpt.contains("note to delete")),
        "{found:?}"
    );
    let refused = app
        .call(app::chat::MessagesAt {
            session_id: two.clone(),
            message_id: gone.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    // Newest first; each with its chat.
    let at_lamp = found_ids.iter().position(|i| *i == lamp).unwrap();
    let at_keeper = found_ids.iter().position(|i| *i == keeper).unwrap();
    assert!(at_lamp < at_keeper);
    let hit = &found[at_keeper];
    assert_eq!(
        (hit.session_id.as_str(), hit.with.as_str()),
        (one.as_str(), "Mira")
    );
    assert_eq!(hit.role, app::chat::MessageRole::User);
    assert!(hit.excerpt.contains("lighthouse keeper"));
    // Every word must be there.
    assert_eq!(
        asked(&search("lighthouse noon").await.unwrap()),
        std::slice::from_ref(&keeper)
    );
    assert!(search("lighthouse zebra").await.unwrap().is_empty());
    // Query syntax is only words; nothing else is read from what is typed.
    assert!(search("\"; DROP TABLE chat_messages; -- *").await.is_ok());
    assert!(search("   ").await.unwrap().is_empty());
    let refused = search(&"x".repeat(201)).await;
    assert!(
        matches!(refused, Err(AppError::BadRequest(_))),
        "{refused:?}"
    );

    // A version off the branch shown is found, and opens at itself.
    let ferry = search("ferry").await.unwrap();
    assert_eq!(asked(&ferry), std::slice::from_ref(&old));
    let page = app
        .call(app::chat::MessagesAt {
            session_id: one.clone(),
            message_id: old.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        page.messages.last().unwrap().content,
        "Where does the ferry harbour?"
    );
    assert_eq!(page.messages.last().unwrap().version, 1);
    let html = app.html(&format!("/chats/{one}?at={old}")).await;
    assert!(html.contains("Where does the ferry harbour?"));
    assert!(html.contains(&format!("id=\"m-{old}\"")));
    assert!(html.contains("msg user found"));
    assert!(
        html.contains("data-testid=\"load-latest\""),
        "a way back to the latest"
    );
    // The search page lists them, each a link to its message.
    let html = app.html("/chats?q=lighthouse").await;
    assert!(html.contains(&format!("/chats/{one}?at={keeper}#m-{keeper}")));
    assert!(!html.contains("A lighthouse in the bin"));

    // Someone else's message through one's own chat, or in their chat, is not found.
    let refused = app
        .call(app::chat::MessagesAt {
            session_id: one.clone(),
            message_id: lamp.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let refused = other
        .call(app::chat::MessagesAt {
            session_id: one.clone(),
            message_id: keeper.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let theirs_found = other
        .call(app::chat::SearchChats {
            q: "lighthouse".into(),
        })
        .await
        .unwrap();
    assert!(theirs_found.iter().all(|h| h.session_id == their_chat));
    assert_eq!(asked(&theirs_found), [their_message]);
}

async fn messages_are_shown_formatted_and_what_they_hold_never_runs(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let sid = start(&app, &character).await.session_id;
    let hostile = "*waves* <script>alert(1)</script> [x](javascript:alert(1)) ![t](https://example.org/t.png)";
    mock.push(text("*smiles* A **bold** answer.\n> quoted"));
    let events = app
        .stream(SendMessage {
            session_id: sid.clone(),
            text: hostile.into(),
            after: None,
        })
        .await
        .rest()
        .await;
    // The reply, formatted as saved, just before it ends.
    let n = events.len();
    match &events[n - 2..] {
        [app::chat::ChatEvent::Formatted { html }, app::chat::ChatEvent::Finished { .. }] => {
            assert!(
                html.contains("<em>smiles</em>") && html.contains("<strong>bold</strong>"),
                "{html}"
            );
            assert!(html.contains("<blockquote>"), "{html}");
        }
        other => panic!("{other:?}"),
    }
    let view = app
        .call(ViewChat {
            session_id: Some(sid.clone()),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap();
    let mine = &view.messages[1];
    assert_eq!(mine.content, hostile, "the text is kept as written");
    assert!(mine.html.contains("<em>waves</em>"), "{}", mine.html);
    assert!(mine.html.contains("&lt;script&gt;"), "{}", mine.html);
    assert!(
        !mine.html.contains("<script") && !mine.html.contains("<a ") && !mine.html.contains("<img")
    );
    // The page shows it formatted, and nothing in it runs.
    let html = app.html(&format!("/chats/{sid}")).await;
    assert!(html.contains("<em>waves</em>"));
    assert!(html.contains("<em>smiles</em> A <strong>bold</strong> answer."));
    assert!(!html.contains("<script>alert(1)"));
    assert!(!html.contains("href=\"javascript:"));
    assert!(
        !html.contains("example.org/t.png\""),
        "an image is never loaded"
    );
}

async fn a_chat_moved_to_the_trash_stops_its_reply(backend: Backend) {
    use crate::reliability::{eventually, start_reply, words};
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    app.sign_in_local().await;
    let character = save_character(&app, "Mira").await;
    let sid = start(&app, &character).await.session_id;
    // A long reply, a word every 50 ms.
    mock.push(words(400, 50));
    let (mut stream, reply_id, _) = start_reply(&app, &sid, "Talk for a long while").await;
    app.call(TrashChat {
        session_id: sid.clone(),
    })
    .await
    .unwrap();
    // Its server sees the stop at its next flush, ends the stream, and keeps the text so far.
    let events = tokio::time::timeout(std::time::Duration::from_secs(10), stream.rest())
        .await
        .expect("the reply stops");
    assert!(
        matches!(
            events.last(),
            Some(app::chat::ChatEvent::Finished {
                status: app::chat::MessageStatus::Stopped
            })
        ),
        "{events:?}"
    );
    let (status, text) = eventually(
        &app,
        &reply_id,
        std::time::Duration::from_secs(5),
        |(_, t)| !t.is_empty(),
    )
    .await;
    assert_eq!(status, "stopped");
    assert!(!text.is_empty());
    // Restored, the chat shows it stopped, and it is no longer being written.
    app.call(RestoreChat {
        session_id: sid.clone(),
    })
    .await
    .unwrap();
    let view = app
        .call(ViewChat {
            session_id: Some(sid),
            character_id: None,
            fresh: false,
        })
        .await
        .unwrap();
    assert_eq!(
        view.messages.last().unwrap().status,
        app::chat::MessageStatus::Stopped
    );
}
