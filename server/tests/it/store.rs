//! The store's contract, run against SQLite and Postgres alike: the same calls must give the same
//! results on both backends.

use crate::common::{Backend, TestDb};
use app::auth::store::upsert_identity;
use app::auth::UserId;
use app::characters::store as characters;
use app::chat::{store as chat, MessageRole, MessageStatus};
use app::domain::{CharacterDraft, CharacterSpec, DraftEnding};
use app::infra::db::{Backend as DbBackend, Db};

on_both_backends!(
    migrations_create_the_whole_schema,
    identities_map_to_one_user,
    concurrent_first_sign_ins_make_one_user,
    characters_are_scoped_to_their_owner,
    a_saved_character_reads_back_identically,
    a_chat_session_starts_with_the_greeting_once,
    message_history_keeps_order_and_honours_the_limit,
    message_order_follows_writing_not_the_clock,
    a_replys_final_state_is_written_once,
    a_reply_given_up_while_its_server_lost_the_database_is_taken_back,
    a_message_with_an_unknown_role_or_status_is_refused,
    deleting_a_user_removes_their_data,
);

async fn db(backend: Backend) -> (Db, TestDb) {
    let t = TestDb::new(backend).await;
    let db = Db::connect(&t.url).await.expect("connect and migrate");
    let expected = match backend {
        Backend::Sqlite => DbBackend::Sqlite,
        Backend::Postgres => DbBackend::Postgres,
    };
    assert_eq!(db.backend(), expected);
    (db, t)
}

fn spec(name: &str) -> CharacterSpec {
    CharacterDraft {
        name: name.into(),
        traits: vec!["brave".into(), "Ünïcode 夜".into()],
        age: "40".into(),
        gender: "non-binary".into(),
        voice: "".into(),
        scenes: "15".into(),
        language: "Português".into(),
        avatar: "moss".into(),
        backstory: "Line one.\n\nLine \"two\" with 'quotes' and ; DROP TABLE users; --".into(),
        story_context: "World.".into(),
        opening_line: "Hello.".into(),
        start_options: vec!["A".into(), "B".into(), "C".into()],
        endings: vec![
            DraftEnding {
                kind: "happy".into(),
                text: "H".into(),
            },
            DraftEnding {
                kind: "tragic".into(),
                text: "T".into(),
            },
            DraftEnding {
                kind: "ambiguous".into(),
                text: "A".into(),
            },
        ],
    }
    .parse_spec()
    .unwrap()
}

async fn migrations_create_the_whole_schema(backend: Backend) {
    let (db, _t) = db(backend).await;
    for table in [
        "users",
        "oauth_identities",
        "characters",
        "twins",
        "shades",
        "chat_sessions",
        "chat_messages",
        "generations",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = app::with_pool!(&db, pool => {
            sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{table}: {e}"))
        });
        assert_eq!(n, 0, "{table}");
    }
    // Connecting again runs no migration twice.
    let t2 = Db::connect(&_t.url).await.expect("reconnect");
    t2.ping().await.unwrap();
}

async fn identities_map_to_one_user(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = upsert_identity(&db, "github", "42", "Ada").await.unwrap();
    let again = upsert_identity(&db, "github", "42", "Ada L.")
        .await
        .unwrap();
    assert_eq!(a.id, again.id);
    let b = upsert_identity(&db, "google", "42", "Ada").await.unwrap();
    assert_ne!(a.id, b.id, "(provider, subject) is the key");
    assert_eq!(
        app::auth::store::find_user(&db, &a.id)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Ada"
    );
    assert!(app::auth::store::find_user(&db, "nobody")
        .await
        .unwrap()
        .is_none());
}

async fn characters_are_scoped_to_their_owner(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let b = UserId(upsert_identity(&db, "t", "b", "B").await.unwrap().id);
    let first = characters::insert(&db, &a, &spec("First")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let second = characters::insert(&db, &a, &spec("Second")).await.unwrap();
    characters::insert(&db, &b, &spec("Theirs")).await.unwrap();

    let mine: Vec<String> = characters::list_for(&db, &a)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(mine, vec![second.clone(), first.clone()], "newest first");
    assert_eq!(characters::list_for(&db, &b).await.unwrap().len(), 1);
    assert!(characters::find(&db, &b, &first).await.unwrap().is_none());
    assert!(characters::find(&db, &a, &first).await.unwrap().is_some());
    assert!(chat::open_session(&db, &b, &first).await.unwrap().is_none());
}

async fn a_saved_character_reads_back_identically(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let s = spec("Ñandú");
    let id = characters::insert(&db, &a, &s).await.unwrap();
    let view = characters::find(&db, &a, &id).await.unwrap().unwrap();
    assert_eq!(view.draft.parse_spec().unwrap(), s);
    assert!(view.created_at > 0 && view.created_at == view.updated_at);
}

async fn a_chat_session_starts_with_the_greeting_once(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let c = characters::insert(&db, &a, &spec("Mira")).await.unwrap();
    let s1 = chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    let s2 = chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    assert_eq!(s1, s2);
    let msgs = chat::messages(&db, &s1, None).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].role, MessageRole::Assistant);
    assert_eq!(msgs[0].content, "Hello.");
    assert_eq!(msgs[0].status, MessageStatus::Complete);
}

async fn message_history_keeps_order_and_honours_the_limit(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let c = characters::insert(&db, &a, &spec("Mira")).await.unwrap();
    let s = chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    // Many messages in the same millisecond (here all stamped 1, before the greeting) still come
    // back in the order they were written.
    for i in 0..30 {
        let m = chat::insert_message(
            &db,
            &s,
            MessageRole::User,
            &format!("m{i:02}"),
            MessageStatus::Complete,
        )
        .await
        .unwrap();
        set_created_at(&db, &m.id, 1).await;
    }
    let all = chat::messages(&db, &s, None).await.unwrap();
    assert_eq!(all.len(), 31);
    let contents: Vec<&str> = all.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents[0], "Hello.", "the greeting was written first");
    assert_eq!(contents[1], "m00");
    assert_eq!(contents[30], "m29");
    let latest = chat::messages(&db, &s, Some(5)).await.unwrap();
    let tail: Vec<&str> = latest.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(tail, vec!["m25", "m26", "m27", "m28", "m29"]);
}

async fn set_created_at(db: &Db, id: &str, at: i64) {
    app::with_pool!(db, pool => {
        sqlx::query("UPDATE chat_messages SET created_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap()
    });
}

/// A clock that steps back (NTP, a VM resumed, another server's clock) does not reorder a chat.
async fn message_order_follows_writing_not_the_clock(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let c = characters::insert(&db, &a, &spec("Mira")).await.unwrap();
    let s = chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    let now = app::infra::now_ms();
    let mut written = vec!["Hello.".to_string()];
    for i in 0..6 {
        let (role, text) = if i % 2 == 0 {
            (MessageRole::User, format!("question {i}"))
        } else {
            (MessageRole::Assistant, format!("answer {i}"))
        };
        let m = chat::insert_message(&db, &s, role, &text, MessageStatus::Complete)
            .await
            .unwrap();
        // Each message's clock reads earlier than the one before: an hour back, then more.
        set_created_at(&db, &m.id, now - 3_600_000 * (i + 1)).await;
        written.push(text);
    }
    let read: Vec<String> = chat::messages(&db, &s, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(read, written);
    let latest: Vec<String> = chat::messages(&db, &s, Some(2))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(latest, written[5..]);
}

/// Stopped (by a Stop that reached another server) stays stopped when the generating server
/// saves its end; the text it had is still kept.
async fn a_replys_final_state_is_written_once(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let c = characters::insert(&db, &a, &spec("Mira")).await.unwrap();
    let s = chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    let reply = chat::insert_message(
        &db,
        &s,
        MessageRole::Assistant,
        "",
        MessageStatus::Streaming,
    )
    .await
    .unwrap();
    chat::mark_stopped(&db, &reply.id).await.unwrap();
    let _ = chat::finish_message(
        &db,
        &reply.id,
        "all of it",
        MessageStatus::Complete,
        app::infra::llm::Usage::default(),
        "gemini",
        true,
    )
    .await
    .unwrap();
    let m = chat::messages(&db, &s, None).await.unwrap().pop().unwrap();
    assert_eq!(
        (m.status, m.content.as_str()),
        (MessageStatus::Stopped, "all of it")
    );
}

/// A reply whose heartbeat lapsed because its server could not reach the database is given up
/// as interrupted by a sweep; when its server gets through again (reclaiming), it takes the reply
/// back to streaming. A Stop is never undone, and a server that did not lose the database does
/// not reclaim.
async fn a_reply_given_up_while_its_server_lost_the_database_is_taken_back(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let c = characters::insert(&db, &a, &spec("Mira")).await.unwrap();
    let s = chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    let reply = chat::insert_message(
        &db,
        &s,
        MessageRole::Assistant,
        "",
        MessageStatus::Streaming,
    )
    .await
    .unwrap();
    // A cut-off in the future: every streaming reply counts as stale.
    assert_eq!(
        chat::interrupt_stale(&db, Some(&s), i64::MAX)
            .await
            .unwrap(),
        1
    );
    assert!(!chat::flush_partial(&db, &reply.id, "some", false)
        .await
        .unwrap());
    assert!(chat::flush_partial(&db, &reply.id, "some text", true)
        .await
        .unwrap());
    let m = chat::messages(&db, &s, None).await.unwrap().pop().unwrap();
    assert_eq!(
        (m.status, m.content.as_str()),
        (MessageStatus::Streaming, "some text")
    );
    chat::mark_stopped(&db, &reply.id).await.unwrap();
    assert!(!chat::flush_partial(&db, &reply.id, "more", true)
        .await
        .unwrap());
    let m = chat::messages(&db, &s, None).await.unwrap().pop().unwrap();
    assert_eq!(m.status, MessageStatus::Stopped);
}

async fn a_message_with_an_unknown_role_or_status_is_refused(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let c = characters::insert(&db, &a, &spec("Mira")).await.unwrap();
    let s = chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    // Each odd row is written after the greeting, as the end of the chat shown.
    let insert = "INSERT INTO chat_messages (id, session_id, role, content, status, seq, created_at, updated_at, parent_id) \
                  VALUES ($1, $2, $3, 'text', $4, 100, 1, 1, (SELECT head_id FROM chat_sessions WHERE id = $2))";
    let shown = |id: String| {
        let (db, s) = (db.clone(), s.clone());
        async move {
            app::with_pool!(&db, pool => {
                sqlx::query("UPDATE chat_sessions SET head_id = $1 WHERE id = $2").bind(&id).bind(&s)
                    .execute(pool).await.map(|_| ()).unwrap()
            })
        }
    };
    let greeting = chat::messages(&db, &s, None).await.unwrap()[0].id.clone();
    let refused = |r: Result<Vec<app::chat::ChatMessage>, sqlx::Error>, what: &str| match r {
        Err(sqlx::Error::Decode(e)) => assert!(e.to_string().contains(what), "{e}"),
        other => panic!("expected a decode error naming {what:?}, got {other:?}"),
    };

    // A role the schema allows but this code does not know is not shown as the character's.
    let system = app::infra::new_id();
    app::with_pool!(&db, pool => {
        sqlx::query(insert).bind(&system).bind(&s).bind("system").bind("complete")
            .execute(pool).await.map(|_| ()).unwrap()
    });
    shown(system.clone()).await;
    refused(chat::messages(&db, &s, None).await, "role \"system\"");
    app::with_pool!(&db, pool => {
        sqlx::query("DELETE FROM chat_messages WHERE id = $1").bind(&system)
            .execute(pool).await.map(|_| ()).unwrap()
    });
    shown(greeting).await;
    assert_eq!(chat::messages(&db, &s, None).await.unwrap().len(), 1);

    // A status outside the schema's own list (written past its CHECK) is not shown as failed.
    let odd = app::infra::new_id();
    match &db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("PRAGMA ignore_check_constraints = ON")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query(insert)
                .bind(&odd)
                .bind(&s)
                .bind("assistant")
                .bind("archived")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query("PRAGMA ignore_check_constraints = OFF")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query("ALTER TABLE chat_messages DROP CONSTRAINT chat_messages_status_check")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(insert)
                .bind(&odd)
                .bind(&s)
                .bind("assistant")
                .bind("archived")
                .execute(pool)
                .await
                .unwrap();
        }
    }
    shown(odd.clone()).await;
    refused(chat::messages(&db, &s, None).await, "status \"archived\"");
    match chat::reply_status(&db, &a, &odd).await {
        Err(sqlx::Error::Decode(e)) => assert!(e.to_string().contains("archived"), "{e}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

async fn deleting_a_user_removes_their_data(backend: Backend) {
    let (db, _t) = db(backend).await;
    let a = UserId(upsert_identity(&db, "t", "a", "A").await.unwrap().id);
    let c = characters::insert(&db, &a, &spec("Mira")).await.unwrap();
    chat::open_session(&db, &a, &c).await.unwrap().unwrap();
    app::with_pool!(&db, pool => {
        sqlx::query("DELETE FROM users WHERE id = $1").bind(&a.0).execute(pool).await.map(|_| ()).unwrap()
    });
    for table in [
        "characters",
        "chat_sessions",
        "chat_messages",
        "oauth_identities",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 =
            app::with_pool!(&db, pool => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap());
        assert_eq!(n, 0, "{table} not cleaned up");
    }
}

async fn concurrent_first_sign_ins_make_one_user(backend: Backend) {
    let (db, _t) = db(backend).await;
    let attempts = (0..8).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { upsert_identity(&db, "github", "race", "Racer").await })
    });
    let ids: Vec<String> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every attempt ends with the user").id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let users: i64 = app::with_pool!(&db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await.unwrap()
    });
    assert_eq!(users, 1);
}
