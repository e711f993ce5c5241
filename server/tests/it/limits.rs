//! Limits and statuses (the security issue's doors 2, 3 and 4): input too large or too costly to
//! check is refused before it is read; every refusal has the status that says why; model calls are
//! limited per user (rate, concurrency, daily tokens) and sign-ins per client address, with the
//! counters in the database so they hold across servers sharing it; and garbage thrown at every
//! server function's decoder is a 4xx, never a 5xx.

use crate::common::*;
use app::characters::{GenerateCharacter, ListCharacters, SaveCharacter};
use app::chat::{ChatEvent, SendMessage};
use app::domain::CharacterDraft;
use app::error::AppError;
use leptos::server_fn::ServerFn;
use mock_llm::{MockLlm, Reply};

on_both_backends!(
    a_huge_trait_list_is_refused_without_being_scanned,
    bodies_over_their_routes_limit_get_413,
    every_refusal_has_its_status,
    model_calls_are_rate_limited_per_user,
    concurrent_generations_are_capped_per_user,
    the_daily_token_budget_is_enforced,
    sign_ins_are_rate_limited_per_address,
    decoders_answer_garbage_with_4xx,
);

fn draft(name: &str) -> CharacterDraft {
    serde_json::from_value(valid_draft(name)).unwrap()
}

/// A `valid_draft` whose trait list has `n` distinct short entries (base 36, so 250,000 of them
/// fit in under 2 MB, the framework's default body limit).
fn draft_with_traits(n: usize) -> serde_json::Value {
    let base36 = |mut i: usize| {
        let mut s = Vec::new();
        loop {
            s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36]);
            i /= 36;
            if i == 0 {
                break;
            }
        }
        String::from_utf8(s).unwrap()
    };
    let mut d = valid_draft("Many");
    d["traits"] = (0..n).map(base36).collect();
    serde_json::json!({ "draft": d })
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on {} {}", res.url(), res.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn error_of(res: reqwest::Response) -> AppError {
    let body = res.text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not an AppError: {body:?}: {e}"))
}

// ---- 2. Validation that costs more than the request -------------------------------------------

async fn a_huge_trait_list_is_refused_without_being_scanned(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    // 250,000 traits: every trait used to be compared with every other (minutes of a worker
    // thread) before the limit of 8 was checked. Now the body is over the route's limit.
    for path in [SaveCharacter::PATH, GenerateCharacter::PATH] {
        let res = app
            .client
            .post(app.url(path))
            .header("accept", "application/json")
            .json(&draft_with_traits(250_000))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(res.status().as_u16(), 413 | 422),
            "{path}: {}",
            res.status()
        );
    }
    // A long list inside the body limit is refused by its count, field by field.
    let res = app
        .client
        .post(app.url(SaveCharacter::PATH))
        .header("accept", "application/json")
        .json(&draft_with_traits(15_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let AppError::Invalid(errs) = error_of(res).await else {
        panic!("expected field errors")
    };
    let msg = errs.get("traits").unwrap();
    assert!(msg.contains("at most 8 traits"), "{msg}");
}

async fn bodies_over_their_routes_limit_get_413(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let view = open_chat(&app, &id).await;

    // A message is at most 4,000 characters; a megabyte is refused before it is read.
    let big = "x".repeat(1 << 20);
    let res = app
        .send(app::chat::SendMessage {
            session_id: view.session_id.clone(),
            text: big.clone(),
            after: None,
        })
        .await;
    assert_eq!(res.status(), 413);
    assert!(matches!(error_of(res).await, AppError::TooLarge(_)));

    // The same without a Content-Length (a chunked upload) is cut off at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..64)
        .map(|_| Ok(vec![b'a'; 16 * 1024]))
        .chain([Ok(b"=1".to_vec())])
        .collect();
    let res = app
        .client
        .post(app.url(app::chat::SendMessage::PATH))
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    // An id-only endpoint takes a few kilobytes at most.
    let res = app
        .send(app::characters::GetCharacter {
            id: "x".repeat(64 * 1024),
        })
        .await;
    assert_eq!(res.status(), 413);

    // The largest valid draft still fits: every text at its maximum, in four-byte characters.
    let mut d = draft("Full");
    d.name = "𝔄".repeat(app::domain::CharacterName::MAX);
    d.traits = (0..8).map(|i| format!("{i}{}", "𝔄".repeat(29))).collect();
    d.backstory = "𝔄".repeat(app::domain::LongText::MAX);
    d.story_context = "𝔄".repeat(app::domain::LongText::MAX);
    d.opening_line = "𝔄".repeat(app::domain::OpeningLine::MAX);
    d.start_options = (0..3)
        .map(|i| format!("{i}{}", "𝔄".repeat(app::domain::StartOption::MAX - 1)))
        .collect();
    d.endings = ["happy", "tragic", "open"]
        .iter()
        .map(|k| app::domain::DraftEnding {
            kind: k.to_string(),
            text: "𝔄".repeat(app::domain::EndingText::MAX),
        })
        .collect();
    let saved = app
        .call(SaveCharacter {
            draft: d,
            import: None,
        })
        .await;
    assert!(saved.is_ok(), "{saved:?}");
}

// ---- 3. Wrong status codes ----------------------------------------------------------------------

async fn every_refusal_has_its_status(backend: Backend) {
    within_one_rate_window(20).await;
    let app = spawn_app_with(
        backend,
        &[
            ("OFFLINE_TOKEN_DELAY_MS", "40"),
            ("LIMIT_MODEL_CALLS_PER_MINUTE", "4"),
        ],
        |_| {},
    )
    .await;

    // 401: not signed in.
    let res = app.send(ListCharacters {}).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await, AppError::Unauthorized);

    app.sign_in_local().await;

    // 400: a body that does not decode (not JSON; JSON of the wrong shape; a missing field).
    for body in [
        "{not json".to_string(),
        r#"{"draft": 5}"#.to_string(),
        r#"{}"#.to_string(),
    ] {
        let res = app
            .client
            .post(app.url(SaveCharacter::PATH))
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        assert!(matches!(error_of(res).await, AppError::Transport(_)));
    }

    // 422: a draft that decodes but fails validation.
    let mut bad = draft("");
    bad.age = "old".into();
    let res = app
        .send(SaveCharacter {
            draft: bad,
            import: None,
        })
        .await;
    assert_eq!(res.status(), 422);
    assert!(matches!(error_of(res).await, AppError::Invalid(_)));
    let res = app
        .send(SendMessage {
            session_id: "x".into(),
            text: "   ".into(),
            after: None,
        })
        .await;
    assert_eq!(res.status(), 422);

    // 404: missing, or someone else's.
    let res = app
        .send(app::characters::GetCharacter { id: "nope".into() })
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_of(res).await, AppError::NotFound);

    // 403: a cross-site write.
    let res = app
        .client
        .post(app.url(ListCharacters::PATH))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // 409: a second message while the reply to the first is still being written.
    let id = save_character(&app, "Mira").await; // model call 1
    let view = open_chat(&app, &id).await;
    let mut first = app
        .stream(SendMessage {
            session_id: view.session_id.clone(),
            text: "Tell me a long story.".into(),
            after: None,
        })
        .await; // model call 2
    first.until(|e| matches!(e, ChatEvent::Delta { .. })).await;
    let res = app
        .send(SendMessage {
            session_id: view.session_id.clone(),
            text: "Hello?".into(),
            after: None,
        })
        .await; // model call 3 (refused)
    assert_eq!(res.status(), 409);
    let AppError::Conflict(msg) = error_of(res).await else {
        panic!("expected a conflict")
    };
    assert!(msg.contains("still being written"), "{msg}");
    first.rest().await;

    // 429 with Retry-After: over the rate of model calls.
    let res = app
        .send(GenerateCharacter {
            draft: draft("A"),
            variation: 0,
        })
        .await; // model call 4
    assert_eq!(res.status(), 200);
    let res = app
        .send(GenerateCharacter {
            draft: draft("A"),
            variation: 0,
        })
        .await; // model call 5: over the limit of 4
    assert_eq!(res.status(), 429);
    assert!((1..=60).contains(&retry_after(&res)));
    let AppError::RateLimited { message, .. } = error_of(res).await else {
        panic!("expected RateLimited")
    };
    assert!(message.contains("try again"), "{message}");

    // 500 only for faults: the database going away is one.
    app.db.close().await;
    let res = app.send(ListCharacters {}).await;
    assert!(res.status().is_server_error(), "{}", res.status());
}

/// A provider that fails is a fault upstream: 502, with the words for the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_a_bad_gateway() {
    let mock = MockLlm::start().await;
    let base = mock.base_url();
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("LLM_PROVIDER", "gemini"),
            ("GEMINI_API_KEY", "test-key"),
            ("GEMINI_BASE_URL", base.as_str()),
            ("LLM_MAX_ATTEMPTS", "1"),
            ("LLM_TIMEOUT_SECS", "3"),
        ],
        |_| {},
    )
    .await;
    app.sign_in_local().await;
    mock.push(Reply::error(500, "INTERNAL"));
    let res = app
        .send(GenerateCharacter {
            draft: draft("A"),
            variation: 0,
        })
        .await;
    assert_eq!(res.status(), 502);
    assert!(matches!(error_of(res).await, AppError::Provider(_)));
}

// ---- 4. Limits on spending ----------------------------------------------------------------------

async fn model_calls_are_rate_limited_per_user(backend: Backend) {
    within_one_rate_window(20).await;
    let app = spawn_app_with(backend, &[("LIMIT_MODEL_CALLS_PER_MINUTE", "2")], |_| {}).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await; // 1
    let view = open_chat(&app, &id).await;
    send_message(&app, &view.session_id, "Hello").await; // 2
    let calls = count(&app, "SELECT COUNT(*) FROM generations").await;

    // Over the limit, chat and generation alike are refused without calling the model.
    let res = app
        .send(SendMessage {
            session_id: view.session_id.clone(),
            text: "Again".into(),
            after: None,
        })
        .await;
    assert_eq!(res.status(), 429);
    assert!(retry_after(&res) >= 1);
    let res = app
        .send(GenerateCharacter {
            draft: draft("B"),
            variation: 0,
        })
        .await;
    assert_eq!(res.status(), 429);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM generations").await, calls);
    // The refused message was not saved either.
    assert_eq!(open_chat(&app, &id).await.messages.len(), 3);

    // Another user has their own allowance.
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let res = other
        .send(GenerateCharacter {
            draft: draft("C"),
            variation: 0,
        })
        .await;
    assert_eq!(res.status(), 200);
}

async fn concurrent_generations_are_capped_per_user(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("OFFLINE_TOKEN_DELAY_MS", "40"),
            ("LIMIT_CONCURRENT_GENERATIONS", "1"),
        ],
        |_| {},
    )
    .await;
    app.sign_in_local().await;
    let a = open_chat(&app, &save_character(&app, "A").await).await;
    let b = open_chat(&app, &save_character(&app, "B").await).await;

    let mut first = app
        .stream(SendMessage {
            session_id: a.session_id.clone(),
            text: "Tell me everything.".into(),
            after: None,
        })
        .await;
    first.until(|e| matches!(e, ChatEvent::Delta { .. })).await;
    // While A's reply is being written, neither another chat nor a generation may start.
    let res = app
        .send(SendMessage {
            session_id: b.session_id.clone(),
            text: "Hi".into(),
            after: None,
        })
        .await;
    assert_eq!(res.status(), 429);
    assert!(retry_after(&res) >= 1);
    let AppError::RateLimited { message, .. } = error_of(res).await else {
        panic!("expected RateLimited")
    };
    assert!(message.contains("being written"), "{message}");
    let res = app
        .send(GenerateCharacter {
            draft: draft("C"),
            variation: 0,
        })
        .await;
    assert_eq!(res.status(), 429);

    // Once it is done, the slot is free again.
    first.rest().await;
    let (events, _) = send_message(&app, &b.session_id, "Hi").await;
    assert!(matches!(events.last(), Some(ChatEvent::Finished { .. })));
}

async fn the_daily_token_budget_is_enforced(backend: Backend) {
    let app = spawn_app_with(backend, &[("LIMIT_DAILY_TOKENS", "5000")], |_| {}).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let view = open_chat(&app, &id).await;
    // Today's recorded usage reaches the budget (yesterday's does not count).
    let owner: String = app::with_pool!(&app.db, pool => {
        sqlx::query_scalar("SELECT owner_id FROM characters WHERE id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let now = app::infra::now_ms();
    for (tokens, at) in [(4_000, now - 86_400_000 * 2), (5_000, now)] {
        app::usage::store::record(
            &app.db,
            app::usage::Record {
                owner_id: &owner,
                kind: "chat",
                provider: "test",
                language: None,
                outcome: "ok",
                duration_ms: 1,
                usage: app::infra::llm::Usage {
                    input_tokens: tokens / 2,
                    output_tokens: tokens / 2,
                },
            },
        )
        .await;
        app::with_pool!(&app.db, pool => {
            sqlx::query("UPDATE generations SET created_at = $1 WHERE input_tokens = $2")
                .bind(at)
                .bind((tokens / 2) as i32)
                .execute(pool)
                .await
                .unwrap();
        });
    }
    let res = app
        .send(SendMessage {
            session_id: view.session_id.clone(),
            text: "Hello".into(),
            after: None,
        })
        .await;
    assert_eq!(res.status(), 429);
    let after = retry_after(&res);
    assert!((1..=86_400).contains(&after), "{after}");
    let AppError::RateLimited { message, .. } = error_of(res).await else {
        panic!("expected RateLimited")
    };
    assert!(message.contains("today"), "{message}");
    let res = app
        .send(GenerateCharacter {
            draft: draft("B"),
            variation: 0,
        })
        .await;
    assert_eq!(res.status(), 429);
}

async fn sign_ins_are_rate_limited_per_address(backend: Backend) {
    within_one_rate_window(20).await;
    let app = spawn_app_with(backend, &[("LIMIT_SIGN_INS_PER_MINUTE", "3")], |_| {}).await;
    // Provider starts and local sign-ins share the address's allowance.
    let start = |p: &'static str| {
        let c = new_client();
        let url = app.url(&format!("/auth/{p}/start"));
        async move { c.get(url).send().await.unwrap() }
    };
    assert!(start("oidc").await.status().is_redirection());
    assert!(start("github").await.status().is_redirection());
    let browser = app.another_browser();
    browser.sign_in_local().await;
    let res = start("oidc").await;
    assert_eq!(res.status(), 429);
    assert!((1..=60).contains(&retry_after(&res)));
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));
    let res = app.another_browser().send(app::auth::LocalSignIn {}).await;
    assert_eq!(res.status(), 429);
    assert!(matches!(error_of(res).await, AppError::RateLimited { .. }));
    // Signed-in use is not affected.
    assert!(browser.call(ListCharacters {}).await.is_ok());
}

// ---- Several servers, one database --------------------------------------------------------------

/// Two servers on one Postgres: the per-user rate and the concurrency cap are counted in the
/// database, so a user cannot double them by landing on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_two_servers_on_one_postgres() {
    within_one_rate_window(20).await;
    let limits = [
        ("OFFLINE_TOKEN_DELAY_MS", "40"),
        ("LIMIT_MODEL_CALLS_PER_MINUTE", "4"),
        ("LIMIT_CONCURRENT_GENERATIONS", "1"),
    ];
    let one = spawn_app_with(Backend::Postgres, &limits, |_| {}).await;
    let two = one.second_server(&[]).await;
    one.sign_in_local().await;
    // The same browser, signed in once, is signed in on the other server too.
    assert!(two.call(ListCharacters {}).await.is_ok());

    let a = open_chat(&one, &save_character(&one, "A").await).await; // call 1 (on one)
    let b = open_chat(&two, &save_character(&two, "B").await).await; // call 2 (on two)

    // Concurrency: a reply being written on one server holds the user's only slot on both.
    let mut first = one
        .stream(SendMessage {
            session_id: a.session_id.clone(),
            text: "Tell me everything.".into(),
            after: None,
        })
        .await; // call 3
    first.until(|e| matches!(e, ChatEvent::Delta { .. })).await;
    let res = two
        .send(SendMessage {
            session_id: b.session_id.clone(),
            text: "Hi".into(),
            after: None,
        })
        .await; // call 4 (refused: busy)
    assert_eq!(res.status(), 429);
    assert!(matches!(error_of(res).await, AppError::RateLimited { .. }));
    first.rest().await;

    // Rate: four calls were counted across both servers; the fifth is refused on either.
    for server in [&one, &two] {
        let res = server
            .send(GenerateCharacter {
                draft: draft("C"),
                variation: 0,
            })
            .await;
        assert_eq!(res.status(), 429, "{}", server.base);
        assert!(retry_after(&res) >= 1);
    }
}

// ---- Decoders under garbage ---------------------------------------------------------------------

/// Every registered server function, fed random bytes, invalid UTF-8, 100,000-deep JSON, huge
/// strings and nested form keys, answers with a status below 500, and the server still answers
/// its health check afterwards.
async fn decoders_answer_garbage_with_4xx(backend: Backend) {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let paths: Vec<&str> = leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p)
        .collect();
    assert!(paths.len() >= 10, "{paths:?}");

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    let mut fixed: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", deep.clone().into_bytes()),
        ("application/json", deep_object.into_bytes()),
        (
            "application/json",
            b"\xff\xfe\xfd{\"a\":\"\xc3\x28\"}".to_vec(),
        ),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[]".to_vec()),
        (
            "application/json",
            br#"{"draft":{"traits":[[[[[]]]]]}}"#.to_vec(),
        ),
        (
            "application/json",
            format!(r#"{{"draft":{{"name":"{}"}}}}"#, "x".repeat(200_000)).into_bytes(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"id=%ff%fe&text=%c3%28".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"\xff\xfe=\xfd".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            format!("a{}=1", "[b]".repeat(10_000)).into_bytes(),
        ),
        (
            "application/x-www-form-urlencoded",
            format!("id={}", "%".repeat(3_000)).into_bytes(),
        ),
        ("text/plain", deep.into_bytes()),
        ("", Vec::new()),
    ];
    // Random bodies: a few cases per path (CI has two cores).
    let mut runner = TestRunner::deterministic();
    let bytes = proptest::collection::vec(proptest::num::u8::ANY, 0..2048);
    let json = proptest::string::string_regex(r#"[\[\]{}",:0-9a-z\\ ]{0,512}"#).unwrap();
    for _ in 0..6 {
        fixed.push((
            "application/json",
            bytes.new_tree(&mut runner).unwrap().current(),
        ));
        fixed.push((
            "application/json",
            json.new_tree(&mut runner).unwrap().current().into_bytes(),
        ));
        fixed.push((
            "application/x-www-form-urlencoded",
            bytes.new_tree(&mut runner).unwrap().current(),
        ));
    }

    for path in &paths {
        for (content_type, body) in &fixed {
            let mut req = app
                .client
                .post(app.url(path))
                .header("accept", "application/json")
                .body(body.clone());
            if !content_type.is_empty() {
                req = req.header("content-type", *content_type);
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            assert!(
                !status.is_server_error(),
                "{path} ({content_type}, {} bytes): {status}: {}",
                body.len(),
                res.text().await.unwrap_or_default()
            );
        }
    }
    let res = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
