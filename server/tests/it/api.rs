//! The thin path over HTTP against a real server, on SQLite and on Postgres.

use crate::common::*;
use app::auth::{GetCurrentUser, GetSignInOptions, LocalSignIn, SignOut};
use app::characters::{
    CharacterSummary, GenerateCharacter, GetCharacter, ListCharacters, SaveCharacter,
};
use app::chat::{ChatEvent, MessageRole, MessageStatus, OpenChat, SendMessage};
use app::error::AppError;
use leptos::server_fn::ServerFn;
use std::time::Duration;

on_both_backends!(
    health_reports_the_database,
    every_response_carries_a_request_id,
    anonymous_callers_are_refused,
    local_sign_in_starts_a_hardened_session,
    sign_out_ends_the_session_on_the_server,
    sessions_end_when_idle_and_after_their_lifetime,
    local_sign_in_is_refused_off_loopback,
    generate_save_and_list_newest_first,
    invalid_drafts_get_a_message_per_field,
    someone_elses_character_is_not_found,
    chat_streams_the_reply_and_keeps_the_history,
    a_reply_survives_the_browser_disconnecting,
    an_invalid_message_is_refused_and_not_saved,
    pages_render_without_javascript,
    the_theme_chosen_is_kept_and_rendered_by_the_server,
);

async fn health_reports_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    let get = |path: &'static str| {
        let (client, url) = (app.client.clone(), app.url(path));
        async move {
            let res = client.get(url).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, ready) = get("/api/health/ready").await;
    assert_eq!(
        (status, &ready["migrations"]),
        (200, &serde_json::json!("applied"))
    );
    assert_eq!(get("/api/health/live").await.0, 200);

    // A database behind this build's migrations is not ready (the process is still live).
    let last: String = app::with_pool!(&app.db, pool => {
        sqlx::query_scalar("SELECT CAST(MAX(version) AS TEXT) FROM _sqlx_migrations").fetch_one(pool).await.unwrap()
    });
    app::with_pool!(&app.db, pool => {
        sqlx::query(&format!("UPDATE _sqlx_migrations SET success = FALSE WHERE version = {last}"))
            .execute(pool)
            .await
            .unwrap();
    });
    let (status, ready) = get("/api/health/ready").await;
    assert_eq!(
        (status, &ready["migrations"]),
        (503, &serde_json::json!("behind"))
    );
    assert_eq!(get("/api/health/live").await.0, 200);

    // With the database gone, health and readiness say so; liveness does not.
    app.db.close().await;
    let res = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "unreachable");
    let (status, ready) = get("/api/health/ready").await;
    assert_eq!(
        (status, &ready["database"]),
        (503, &serde_json::json!("unreachable"))
    );
    assert_eq!(get("/api/health/live").await.0, 200);
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.client.get(app.url("/signin")).send().await.unwrap();
    let b = app.client.get(app.url("/signin")).send().await.unwrap();
    let id_a = a
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap()
        .to_string();
    let id_b = b
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id_a, id_b);
    assert_eq!(id_a.len(), 36, "a UUID: {id_a}");
}

async fn anonymous_callers_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.call(GetCurrentUser {}).await, Ok(None));
    assert_eq!(
        app.call(ListCharacters {}).await,
        Err(AppError::Unauthorized)
    );
    assert_eq!(
        app.call(GetCharacter { id: "x".into() }).await,
        Err(AppError::Unauthorized)
    );
    assert_eq!(
        app.call(GenerateCharacter {
            draft: draft("A"),
            variation: 0
        })
        .await,
        Err(AppError::Unauthorized)
    );
    assert_eq!(
        app.call(SaveCharacter {
            draft: draft("A"),
            import: None
        })
        .await,
        Err(AppError::Unauthorized)
    );
    assert_eq!(
        app.call(OpenChat {
            character_id: "x".into()
        })
        .await,
        Err(AppError::Unauthorized)
    );
    let err = app
        .refusal(SendMessage {
            session_id: "x".into(),
            text: "hello".into(),
            after: None,
        })
        .await;
    assert_eq!(err, AppError::Unauthorized);
}

async fn local_sign_in_starts_a_hardened_session(backend: Backend) {
    let app = spawn_app(backend).await;
    // An anonymous visit may already have a session cookie; signing in must replace its id.
    let res = app.send(LocalSignIn {}).await;
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("pf_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );

    let me = app
        .call(GetCurrentUser {})
        .await
        .unwrap()
        .expect("signed in");
    assert_eq!(me.display_name, "Local user");

    // Signing in again is the same user.
    app.sign_in_local().await;
    let again = app.call(GetCurrentUser {}).await.unwrap();
    assert_eq!(again.unwrap().id, me.id);
}

async fn sign_out_ends_the_session_on_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app.send(LocalSignIn {}).await;
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("pf_session="))
        .expect("session cookie");
    app.call(SignOut {}).await.unwrap();
    assert_eq!(app.call(GetCurrentUser {}).await, Ok(None));

    // Replaying the old cookie from another client does not bring the session back.
    let res = app
        .request(&new_client(), ListCharacters {})
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        result::<Vec<CharacterSummary>>(res).await,
        Err(AppError::Unauthorized)
    );
}

async fn local_sign_in_is_refused_off_loopback(backend: Backend) {
    // Listening on all interfaces (still reached over loopback here) with an explicit secret.
    let secret = app::infra::config::SessionSecret::generate_hex();
    let app = spawn_app_with(backend, &[("SESSION_SECRET", secret.as_str())], |c| {
        c.leptos.site_addr = "0.0.0.0:0".parse().unwrap();
    })
    .await;
    match app.call(LocalSignIn {}).await {
        Err(AppError::Forbidden(msg)) => assert!(msg.contains("loopback"), "{msg}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let options = app.call(GetSignInOptions {}).await.unwrap();
    assert!(!options.local);
}

async fn generate_save_and_list_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;

    let generate = || {
        app.call(GenerateCharacter {
            draft: draft("Mira"),
            variation: 0,
        })
    };
    let generated = generate().await.unwrap();
    assert!(generated.offline);
    assert_eq!(generated.story.start_options.len(), 3);
    assert_eq!(generated.story.endings.len(), 3);
    assert!(generated.story.backstory.as_str().contains("Mira"));
    // Deterministic for the same inputs and variation, different for another variation.
    let again = generate().await.unwrap();
    assert_eq!(again, generated);

    let mut draft = draft("Mira").with_story(&generated.story);
    draft.opening_line = "Edited by hand.".into();
    let first = app
        .call(SaveCharacter {
            draft: draft.clone(),
            import: None,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut second_draft = draft.clone();
    second_draft.name = "Orrin".into();
    let second = app
        .call(SaveCharacter {
            draft: second_draft,
            import: None,
        })
        .await
        .unwrap();

    let list: Vec<CharacterSummary> = app.call(ListCharacters {}).await.unwrap();
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["Orrin", "Mira"]);
    assert_eq!(list[0].id, second);

    let got = app.call(GetCharacter { id: first }).await.unwrap();
    assert_eq!(got.draft.opening_line, "Edited by hand.");
    assert_eq!(got.draft.traits, vec!["brave", "curious"]);
    assert_eq!(got.draft.endings.len(), 3);
    assert_eq!(got.draft.parse_spec().unwrap(), draft.parse_spec().unwrap());

    // The generation was recorded for the usage dashboard.
    let count: i64 = app::with_pool!(&app.db, pool => {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations WHERE kind = 'character' AND outcome = 'ok'")
            .fetch_one(pool)
            .await
            .unwrap();
        row.0
    });
    assert_eq!(count, 2);
}

async fn invalid_drafts_get_a_message_per_field(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let mut bad = draft("");
    bad.age = "0".into();
    let err = app
        .call(GenerateCharacter {
            draft: bad,
            variation: 0,
        })
        .await
        .unwrap_err();
    let AppError::Invalid(fields) = err else {
        panic!("expected field errors, got {err:?}")
    };
    assert_eq!(fields.get("name"), Some("Name is required."));
    assert!(fields.get("age").unwrap().contains("between 1 and 1000"));

    // Saving needs the story parts too.
    let err = app
        .call(SaveCharacter {
            draft: draft("Mira"),
            import: None,
        })
        .await
        .unwrap_err();
    let AppError::Invalid(fields) = err else {
        panic!("expected field errors, got {err:?}")
    };
    assert_eq!(fields.get("backstory"), Some("This text is required."));
    assert!(fields.get("start_options").unwrap().contains("exactly 3"));
    let list = app.call(ListCharacters {}).await.unwrap();
    assert!(list.is_empty());

    // A body that is not the expected shape is a clean error, not a crash or a leak.
    let res = app
        .client
        .post(app.url(SaveCharacter::PATH))
        .header("content-type", "application/json")
        .body("{\"draft\": 42}")
        .send()
        .await
        .unwrap();
    assert!(!res.status().is_success());
    let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert!(matches!(err, AppError::Transport(_)), "{err:?}");
}

async fn someone_elses_character_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let view = open_chat(&app, &id).await;

    // Another user, made in the store and signed in through a session row of their own.
    let other = app::auth::store::upsert_identity(&app.db, "test", "someone-else", "Someone Else")
        .await
        .unwrap();
    let owner_b = app::auth::UserId(other.id.clone());
    assert!(app::characters::store::find(&app.db, &owner_b, &id)
        .await
        .unwrap()
        .is_none());
    assert!(app::characters::store::list_for(&app.db, &owner_b)
        .await
        .unwrap()
        .is_empty());
    assert!(app::chat::store::open_session(&app.db, &owner_b, &id)
        .await
        .unwrap()
        .is_none());

    // Unknown ids look the same as someone else's.
    assert_eq!(
        app.call(GetCharacter {
            id: "no-such-id".into()
        })
        .await,
        Err(AppError::NotFound)
    );
    let err = app
        .refusal(SendMessage {
            session_id: "no-such-id".into(),
            text: "hi".into(),
            after: None,
        })
        .await;
    assert_eq!(err, AppError::NotFound);
    let _ = view;
}

async fn chat_streams_the_reply_and_keeps_the_history(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let view = open_chat(&app, &id).await;
    assert!(view.offline);
    assert_eq!(view.messages.len(), 1, "the greeting");
    assert_eq!(view.messages[0].role, MessageRole::Assistant);
    let got = app.call(GetCharacter { id: id.clone() }).await.unwrap();
    assert_eq!(view.messages[0].content, got.draft.opening_line);

    let (events, chunks) = send_message(&app, &view.session_id, "Who are you, really?").await;
    let ChatEvent::Accepted {
        user_message,
        reply_id,
    } = &events[0]
    else {
        panic!("first event must be Accepted: {events:?}")
    };
    assert_eq!(user_message.content, "Who are you, really?");
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Delta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let n_deltas = events
        .iter()
        .filter(|e| matches!(e, ChatEvent::Delta { .. }))
        .count();
    assert!(n_deltas > 5, "token by token: {n_deltas} deltas");
    assert!(
        chunks > 3,
        "the reply arrived in {chunks} network chunks, not all at once"
    );
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Complete
        })
    );

    // Reopening (a reload) shows the same history, saved.
    let reopened = open_chat(&app, &id).await;
    assert_eq!(reopened.session_id, view.session_id);
    let msgs = &reopened.messages;
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1].content, "Who are you, really?");
    assert_eq!(msgs[2].id, *reply_id);
    assert_eq!(msgs[2].content, deltas);
    assert_eq!(msgs[2].status, MessageStatus::Complete);

    // A second turn goes on in the same session.
    let (events, _) = send_message(&app, &view.session_id, "And what now?").await;
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Complete
        })
    );
    let reopened = open_chat(&app, &id).await;
    assert_eq!(reopened.messages.len(), 5);
}

async fn a_reply_survives_the_browser_disconnecting(backend: Backend) {
    // Slow tokens, so the client leaves mid-reply.
    let app = spawn_app_with(backend, &[("OFFLINE_TOKEN_DELAY_MS", "40")], |_| {}).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let view = open_chat(&app, &id).await;

    let mut reply = app
        .stream(SendMessage {
            session_id: view.session_id.clone(),
            text: "Tell me everything.".into(),
            after: None,
        })
        .await;
    for _ in 0..2 {
        let seen = reply.until(|e| matches!(e, ChatEvent::Delta { .. })).await;
        assert!(
            matches!(seen.last(), Some(ChatEvent::Delta { .. })),
            "stream open: {seen:?}"
        );
    }
    drop(reply); // the browser goes away

    // The user's message was saved before the model was called, and the reply finishes anyway.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = open_chat(&app, &id).await;
        assert_eq!(v.messages[1].content, "Tell me everything.");
        if v.messages.len() == 3 && v.messages[2].status == MessageStatus::Complete {
            assert!(v.messages[2].content.split_whitespace().count() > 5);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reply never completed: {:?}",
            v.messages.last()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_invalid_message_is_refused_and_not_saved(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let view = open_chat(&app, &id).await;
    for text in ["   ".to_string(), "x".repeat(4001)] {
        let err = app
            .refusal(SendMessage {
                session_id: view.session_id.clone(),
                text,
                after: None,
            })
            .await;
        let AppError::BadRequest(msg) = err else {
            panic!("expected BadRequest, got {err:?}")
        };
        assert!(msg.starts_with("Your message"), "{msg}");
    }
    let v = open_chat(&app, &id).await;
    assert_eq!(v.messages.len(), 1);
}

async fn pages_render_without_javascript(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = |path: &str| {
        app.client
            .get(app.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
    };
    // Signed out, the dashboard sends you to sign in.
    let res = page("/dashboard").await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"], "/signin");

    let html = page("/signin").await.unwrap().text().await.unwrap();
    assert!(html.contains("Continue as local user"), "{html}");
    // The icon is named, so no browser asks for a /favicon.ico that is not there.
    assert!(
        html.contains(r#"<link rel="icon" type="image/svg+xml" href="/favicon.svg""#),
        "{html}"
    );

    // The sign-in form posts without JavaScript and lands on the dashboard.
    let res = app
        .client
        .post(app.url(LocalSignIn::PATH))
        .header("accept", "text/html")
        .header("referer", app.url("/signin"))
        .form(&[("", "")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"], "/dashboard");

    save_character(&app, "Mira").await;
    let res = page("/dashboard").await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Mira"), "{html}");
    assert!(html.contains("Local user"));

    let res = page("/characters/no-such-id").await.unwrap();
    assert_eq!(res.status(), 404);
    let res = page("/no/such/page").await.unwrap();
    assert_eq!(res.status(), 404);
}

/// Whether a request carrying exactly `cookie` is signed in (no cookie jar in between).
async fn signed_in_with(app: &TestApp, cookie: &str) -> bool {
    let res = app
        .request(&new_client(), GetCurrentUser {})
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    result::<Option<app::auth::CurrentUser>>(res)
        .await
        .unwrap()
        .is_some()
}

async fn sessions_end_when_idle_and_after_their_lifetime(backend: Backend) {
    // Idle: the server forgets a session not used for SESSION_IDLE_SECS, whatever the browser keeps.
    let app = spawn_app_with(backend, &[("SESSION_IDLE_SECS", "1")], |_| {}).await;
    let cookie = session_cookie_of(&app.send(LocalSignIn {}).await);
    assert!(signed_in_with(&app, &cookie).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        !signed_in_with(&app, &cookie).await,
        "idle session still alive"
    );

    // Absolute: even a session in constant use ends SESSION_MAX_AGE_SECS after sign-in.
    let app = spawn_app_with(backend, &[("SESSION_MAX_AGE_SECS", "2")], |_| {}).await;
    let cookie = session_cookie_of(&app.send(LocalSignIn {}).await);
    let signed_in = tokio::time::Instant::now();
    while signed_in.elapsed() < Duration::from_millis(800) {
        assert!(signed_in_with(&app, &cookie).await, "ended too early");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2200).saturating_sub(signed_in.elapsed())).await;
    assert!(
        !signed_in_with(&app, &cookie).await,
        "session outlived its lifetime"
    );
}

/// The theme chooser is a plain form: the choice comes back as a cookie, the next page is
/// rendered in it (no flash, no JavaScript), "Auto" forgets it, and anything else is refused.
async fn the_theme_chosen_is_kept_and_rendered_by_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let path = <app::theme::SetTheme as leptos::server_fn::ServerFn>::PATH;
    let html = app.html("/signin").await;
    assert!(html.contains(r#"data-theme="system""#), "{html}");
    assert!(html.contains(path), "every page offers the chooser");

    let choose = |theme: &str| {
        app.client
            .post(app.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("referer", app.url("/signin"))
            .body(format!("theme={theme}"))
            .send()
    };
    let res = choose("dark").await.unwrap();
    assert_eq!(res.status(), 302);
    // (The framework leaves an empty query on the way back.)
    assert_eq!(
        location(&res).trim_end_matches('?'),
        app.url("/signin"),
        "back to the page it came from"
    );
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("pf_theme=dark;") && cookie.contains("Max-Age=31536000"),
        "{cookie}"
    );
    let html = app.html("/signin").await;
    assert!(html.contains(r#"data-theme="dark""#), "{html}");
    assert!(
        html.contains(r#"value="dark" aria-pressed="true""#),
        "{html}"
    );

    let res = choose("system").await.unwrap();
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let html = app.html("/signin").await;
    assert!(html.contains(r#"data-theme="system""#), "{html}");

    let res = app
        .request(
            &app.client,
            app::theme::SetTheme {
                theme: "\"><script>".into(),
            },
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .get(app.url("/signin"))
        .header("cookie", "pf_theme=\"><b>")
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains(r#"data-theme="system""#));
}
