//! The app with Gemini as its provider (the mock on loopback), on SQLite and Postgres: faults reach
//! the user as clear messages, nothing the user wrote is lost, partial replies are kept and marked.

use crate::common::*;
use app::characters::GenerateCharacter;
use app::chat::{ChatEvent, ChatView, MessageStatus, SendMessage, StopReply};
use app::error::AppError;
use mock_llm::{MockLlm, Reply};
use std::time::Duration;

on_both_backends!(
    chat_replies_stream_through_gemini_and_usage_is_recorded,
    a_failing_provider_keeps_the_users_message,
    a_cut_off_reply_is_kept_and_marked,
    stopping_a_reply_keeps_its_text_and_closes_the_upstream_request,
    an_invalid_structured_reply_gets_one_repair,
    generation_faults_reach_the_user_as_clear_messages,
    a_model_that_fills_the_schema_literally_is_understood,
);

async fn app_with_mock(backend: Backend) -> (TestApp, MockLlm) {
    app_with_gemini(backend, 3).await
}

async fn new_character(app: &TestApp) -> (String, ChatView) {
    let id = save_character(app, "Mira").await;
    let view = open_chat(app, &id).await;
    assert!(!view.offline);
    (id, view)
}

async fn chat_replies_stream_through_gemini_and_usage_is_recorded(backend: Backend) {
    let (app, mock) = app_with_mock(backend).await;
    let (id, view) = new_character(&app).await;
    assert!(!view.offline);
    mock.push(Reply::Crlf {
        then: Box::new(Reply::SplitWrites {
            then: Box::new(Reply::text(&["Salt ", "and ", "smoke, ", "stranger."])),
        }),
    });
    let events = send_message(&app, &view.session_id, "Where are we?")
        .await
        .0;
    assert_eq!(deltas(&events), "Salt and smoke, stranger.");
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Complete
        })
    );

    // The model saw the greeting and the user's message, in order, under the character's system prompt.
    let req = mock.requests().last().unwrap().clone();
    assert_eq!(req.method, "streamGenerateContent");
    let contents = req.body["contents"].as_array().unwrap();
    assert_eq!(
        contents.last().unwrap()["parts"][0]["text"],
        "Where are we?"
    );
    assert_eq!(contents[0]["role"], "model");
    assert!(req.body["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("You are Mira"));

    let v = open_chat(&app, &id).await;
    assert_eq!(v.messages[2].content, "Salt and smoke, stranger.");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM generations WHERE kind = 'chat' AND outcome = 'ok' AND provider = 'gemini'").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM chat_messages WHERE output_tokens > 0"
        )
        .await,
        1
    );
}

async fn a_failing_provider_keeps_the_users_message(backend: Backend) {
    let (app, mock) = app_with_mock(backend).await;
    let (id, view) = new_character(&app).await;
    for _ in 0..3 {
        mock.push(Reply::error(503, "UNAVAILABLE"));
    }
    let events = send_message(&app, &view.session_id, "Are you there?")
        .await
        .0;
    assert!(matches!(events[0], ChatEvent::Accepted { .. }));
    let Some(ChatEvent::Failed { message }) = events.last() else {
        panic!("{events:?}")
    };
    assert!(
        message.contains("unavailable") && message.contains("Your message is saved"),
        "{message}"
    );
    assert!(!message.contains("503"), "no internal detail: {message}");

    let v = open_chat(&app, &id).await;
    assert_eq!(v.messages.len(), 3);
    assert_eq!(v.messages[1].content, "Are you there?");
    assert_eq!(v.messages[1].status, MessageStatus::Complete);
    assert_eq!(v.messages[2].status, MessageStatus::Failed);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'chat' AND outcome = 'unavailable'"
        )
        .await,
        1
    );

    // A daily quota says so, without retrying.
    mock.push(Reply::daily_quota());
    let events = send_message(&app, &view.session_id, "Again?").await.0;
    let Some(ChatEvent::Failed { message }) = events.last() else {
        panic!("{events:?}")
    };
    assert!(message.contains("quota"), "{message}");
}

async fn a_cut_off_reply_is_kept_and_marked(backend: Backend) {
    let (app, mock) = app_with_mock(backend).await;
    let (id, view) = new_character(&app).await;
    mock.push(Reply::CutOff {
        chunks: vec!["I remember ".into(), "the night ".into()],
    });
    let events = send_message(&app, &view.session_id, "Tell me.").await.0;
    assert_eq!(deltas(&events), "I remember the night ");
    let Some(ChatEvent::Failed { message }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(message, "The reply was cut off before it was finished.");
    let v = open_chat(&app, &id).await;
    assert_eq!(v.messages[2].content, "I remember the night ");
    assert_eq!(v.messages[2].status, MessageStatus::Failed);

    // A safety stop keeps what came before it, too.
    mock.push(Reply::Text {
        chunks: vec!["Well, ".into()],
        finish: "SAFETY".into(),
        chunk_delay_ms: 0,
    });
    let events = send_message(&app, &view.session_id, "And then?").await.0;
    let Some(ChatEvent::Failed { message }) = events.last() else {
        panic!("{events:?}")
    };
    assert!(message.contains("safety filters"), "{message}");
    assert_eq!(open_chat(&app, &id).await.messages[4].content, "Well, ");

    // The length limit and a blocked prompt each say what happened.
    mock.push(Reply::Text {
        chunks: vec!["On and ".into(), "on".into()],
        finish: "MAX_TOKENS".into(),
        chunk_delay_ms: 0,
    });
    let events = send_message(&app, &view.session_id, "Longer?").await.0;
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Failed {
            message: "The reply was cut off because it reached the length limit.".into()
        })
    );
    mock.push(Reply::Blocked {
        reason: "SAFETY".into(),
    });
    let events = send_message(&app, &view.session_id, "Blocked?").await.0;
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Failed {
            message: "The model provider blocked this request before answering. Try rephrasing."
                .into()
        })
    );
    let v = open_chat(&app, &id).await;
    assert_eq!(
        v.messages.len(),
        9,
        "every user message kept: {:?}",
        v.messages
    );
    assert_eq!(v.messages[6].content, "On and on");
}

async fn stopping_a_reply_keeps_its_text_and_closes_the_upstream_request(backend: Backend) {
    let (app, mock) = app_with_mock(backend).await;
    let (id, view) = new_character(&app).await;
    mock.push(Reply::Text {
        chunks: (0..100).map(|i| format!("w{i} ")).collect(),
        finish: "STOP".into(),
        chunk_delay_ms: 40,
    });
    let mut reply = app
        .stream(SendMessage {
            session_id: view.session_id.clone(),
            text: "Go on, at length.".into(),
            after: None,
        })
        .await;
    // Three words in, the user presses Stop; the stream goes on to its end.
    let mut events = Vec::new();
    for _ in 0..3 {
        events.extend(reply.until(|e| matches!(e, ChatEvent::Delta { .. })).await);
    }
    let Some(ChatEvent::Accepted { reply_id, .. }) = events.first().cloned() else {
        panic!("first event must be Accepted: {events:?}")
    };
    assert_eq!(
        app.call(StopReply {
            reply_id: reply_id.clone()
        })
        .await,
        Ok(())
    );
    events.extend(reply.rest().await);
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Stopped
        })
    );
    let text = deltas(&events);
    assert!(
        text.starts_with("w0 w1 w2 ") && !text.contains("w99"),
        "{text}"
    );

    let v = open_chat(&app, &id).await;
    assert_eq!(v.messages[2].status, MessageStatus::Stopped);
    assert_eq!(v.messages[2].content, text);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while mock.aborted_streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream request was not closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'chat' AND outcome = 'stopped'"
        )
        .await,
        1
    );

    // Stopping what is already finished is harmless; a reply that is not yours is not found.
    assert_eq!(
        app.call(StopReply {
            reply_id: reply_id.clone()
        })
        .await,
        Ok(())
    );
    assert_eq!(
        app.call(StopReply {
            reply_id: "someone-elses".into()
        })
        .await,
        Err(AppError::NotFound)
    );
    let res = app.send_with(&new_client(), StopReply { reply_id }).await;
    assert_eq!(result::<()>(res).await, Err(AppError::Unauthorized));
}

async fn an_invalid_structured_reply_gets_one_repair(backend: Backend) {
    let (app, mock) = app_with_mock(backend).await;
    mock.push(Reply::RawText {
        text: "{\"backstory\": \"unterminated".into(),
    });
    // The second request gets the default reply: a valid character.
    let generated = app
        .call(GenerateCharacter {
            draft: draft("Mira"),
            variation: 0,
        })
        .await
        .unwrap();
    assert!(generated.story.backstory.as_str().contains("Mira"));
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let repair = reqs[1].body["contents"].as_array().unwrap();
    assert_eq!(
        repair.len(),
        3,
        "prompt, the invalid reply, the correction request"
    );
    assert_eq!(repair[1]["role"], "model");
    assert_eq!(
        repair[1]["parts"][0]["text"],
        "{\"backstory\": \"unterminated"
    );
    assert!(repair[2]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM generations WHERE kind = 'character' AND outcome = 'invalid_reply'").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'character_repair' AND outcome = 'ok'"
        )
        .await,
        1
    );

    // Valid JSON that breaks a domain rule (two start options) is repaired the same way.
    let mut bad = mock_llm::sample_character("Name: Mira");
    bad["start_options"] = serde_json::json!(["Only", "two"]);
    mock.push(Reply::Json { value: bad });
    app.call(GenerateCharacter {
        draft: draft("Mira"),
        variation: 1,
    })
    .await
    .unwrap();
    let last = mock.requests().last().unwrap().clone();
    assert!(last.body["contents"][2]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("exactly 3 start options"));

    // Invalid twice: a typed error, in words for the user.
    mock.push(Reply::RawText {
        text: "nope".into(),
    });
    mock.push(Reply::RawText {
        text: "still nope".into(),
    });
    let err = app
        .call(GenerateCharacter {
            draft: draft("Mira"),
            variation: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AppError::Provider("The model's answer could not be used. Please try again.".into())
    );
}

async fn generation_faults_reach_the_user_as_clear_messages(backend: Backend) {
    let (app, mock) = app_with_mock(backend).await;
    let generate = || {
        app.call(GenerateCharacter {
            draft: draft("Mira"),
            variation: 0,
        })
    };
    mock.push(Reply::Blocked {
        reason: "SAFETY".into(),
    });
    assert_eq!(
        generate().await,
        Err(AppError::Provider(
            "The model provider blocked this request before answering. Try rephrasing.".into()
        ))
    );
    mock.push(Reply::error(403, "PERMISSION_DENIED"));
    let Err(AppError::Provider(msg)) = generate().await else {
        panic!()
    };
    assert!(msg.contains("configuration"), "{msg}");
    mock.push(Reply::rate_limited("0.05s"));
    assert!(generate().await.is_ok(), "a short rate limit is waited out");
}

/// A model that reads only the schema and fills it to its limits writes an answer the app takes
/// at once, through Gemini and through the OpenAI-compatible protocol; one that oversteps every
/// limit (texts half as long again, an extra item, kinds in capitals) is mended without a repair
/// call. Each generation is one model request.
async fn a_model_that_fills_the_schema_literally_is_understood(backend: Backend) {
    let mock = MockLlm::start().await;
    let gemini = mock.base_url();
    let openai = mock.openai_base_url();
    for env in [
        vec![
            ("LLM_PROVIDER", "gemini"),
            ("GEMINI_API_KEY", "test-key"),
            ("GEMINI_BASE_URL", gemini.as_str()),
        ],
        vec![
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", openai.as_str()),
            ("OPENAI_MODEL", "mock"),
        ],
    ] {
        let app = spawn_app_with(backend, &env, |_| {}).await;
        app.sign_in_local().await;
        for over in [1.0, 1.5] {
            let before = mock.requests().len();
            mock.push(Reply::FillSchema { over });
            let generated = app
                .call(GenerateCharacter {
                    draft: draft("Mira"),
                    variation: 0,
                })
                .await
                .unwrap_or_else(|e| panic!("{} at {over}: {e:?}", env[0].1));
            assert_eq!(mock.requests().len(), before + 1, "no repair call");
            let s = &generated.story;
            let kinds: Vec<&str> = s.endings.iter().map(|e| e.kind.as_str()).collect();
            assert_eq!(kinds, ["happy", "tragic", "ambiguous"]);
            assert_eq!(s.start_options.len(), 3);
            // At the limits the text is kept whole; beyond them it is cut at a sentence.
            let backstory = s.backstory.as_str();
            if over == 1.0 {
                assert_eq!(backstory.chars().count(), app::domain::LongText::MAX);
            } else {
                assert!(backstory.chars().count() <= app::domain::LongText::MAX);
                assert!(
                    backstory.ends_with('.'),
                    "{}",
                    &backstory[backstory.len() - 20..]
                );
            }
            // The saved draft parses: what the model wrote can be saved as it is.
            app.call(app::characters::SaveCharacter {
                draft: draft("Mira").with_story(s),
                import: None,
            })
            .await
            .unwrap();
        }
        let body = mock.requests().last().unwrap().body.clone();
        let sent = if env[0].1 == "gemini" {
            &body["generationConfig"]["responseJsonSchema"]
        } else {
            &body["response_format"]["json_schema"]["schema"]
        };
        assert_eq!(sent, &app::domain::GeneratedCharacter::schema());
    }
}
