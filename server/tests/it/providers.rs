//! The model providers against the mock server on loopback: wire format, streaming framings, and
//! every fault the issue lists.

use app::infra::config::Secret;
use app::infra::llm::{
    gemini::{GeminiConfig, GeminiProvider},
    http::RetryPolicy,
    openai::{OpenAiConfig, OpenAiProvider},
    prompts, ChatChunk, ChatRequest, FinishReason, LlmError, LlmProvider, Persona, Role, Sampling,
    Turn,
};
use futures::StreamExt;
use mock_llm::{MockLlm, Reply};
use std::time::{Duration, Instant};

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        budget: Duration::from_secs(5),
    }
}

fn gemini_cfg(mock: &MockLlm) -> GeminiConfig {
    GeminiConfig {
        api_key: Secret::new("test-key"),
        model: "gemini-2.5-flash".into(),
        base_url: mock.base_url(),
        thinking_budget: Some(0),
        safety_threshold: Some("BLOCK_ONLY_HIGH".into()),
        sampling: Sampling::default(),
        timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_secs(2),
        retry: retry(),
    }
}

fn gemini(mock: &MockLlm) -> GeminiProvider {
    GeminiProvider::new(gemini_cfg(mock))
}

fn chat_request(text: &str) -> ChatRequest {
    prompts::chat(
        Persona {
            name: "Mira".into(),
            traits: vec!["brave".into()],
            story_context: "A harbour.".into(),
        },
        "Born at sea.",
        vec![
            Turn {
                role: Role::Model,
                text: "You came back.".into(),
            },
            Turn {
                role: Role::User,
                text: text.into(),
            },
        ],
    )
}

/// Collects a stream: the text, and how it ended.
async fn collect(p: &dyn LlmProvider, req: ChatRequest) -> (String, Result<ChatChunk, LlmError>) {
    let mut s = p.stream_chat(req);
    let mut text = String::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(ChatChunk::Delta(t)) => text.push_str(&t),
            other => {
                assert!(s.next().await.is_none(), "nothing after the end");
                return (text, other);
            }
        }
    }
    panic!("stream ended without a final item")
}

fn character_request() -> app::infra::llm::StructuredRequest {
    let seed = app::domain::CharacterDraft {
        name: "Mira".into(),
        traits: vec!["brave".into()],
        age: "30".into(),
        gender: "female".into(),
        language: "English".into(),
        ..Default::default()
    }
    .parse_seed()
    .unwrap();
    prompts::character(&seed, 0)
}

#[tokio::test]
async fn gemini_speaks_the_wire_format() {
    let mock = MockLlm::start().await;
    let p = gemini(&mock);
    let (text, end) = collect(&p, chat_request("Hello there")).await;
    assert!(text.contains("Hello there"), "{text}");
    let ChatChunk::Done { usage } = end.unwrap() else {
        panic!()
    };
    assert!(usage.output_tokens > 0 && usage.input_tokens > 0);

    let reply = p.generate_json(character_request()).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&reply.raw).unwrap();
    assert!(v["backstory"].as_str().unwrap().contains("Mira"));

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let (stream, unary) = (&reqs[0], &reqs[1]);
    assert_eq!(stream.method, "streamGenerateContent");
    assert_eq!(stream.alt.as_deref(), Some("sse"));
    assert_eq!(stream.model, "gemini-2.5-flash");
    assert_eq!(stream.api_key.as_deref(), Some("test-key"));
    let b = &stream.body;
    assert!(b["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("You are Mira"));
    assert_eq!(b["contents"][0]["role"], "model");
    assert_eq!(b["contents"][1]["role"], "user");
    assert_eq!(b["generationConfig"]["thinkingConfig"]["thinkingBudget"], 0);
    assert_eq!(b["safetySettings"].as_array().unwrap().len(), 4);
    assert!(b["generationConfig"].get("responseMimeType").is_none());
    assert_eq!(unary.method, "generateContent");
    assert_eq!(
        unary.body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        unary.body["generationConfig"]["responseJsonSchema"]["required"][0],
        "backstory"
    );
}

#[tokio::test]
async fn gemini_streams_survive_every_framing() {
    let mock = MockLlm::start().await;
    let p = gemini(&mock);
    let chunks = ["Ué, ", "olá — ", "this ", "is ", "the ", "reply."];
    let expected: String = chunks.concat();
    for wrap in [
        |r| r,
        |r| Reply::Crlf { then: Box::new(r) },
        |r| Reply::SplitWrites { then: Box::new(r) },
        |r| Reply::Batched { then: Box::new(r) },
        |r| Reply::Crlf {
            then: Box::new(Reply::SplitWrites { then: Box::new(r) }),
        },
    ] as [fn(Reply) -> Reply; 5]
    {
        mock.push(wrap(Reply::text(&chunks)));
        let (text, end) = collect(&p, chat_request("hi")).await;
        assert_eq!(text, expected);
        assert!(matches!(end, Ok(ChatChunk::Done { .. })));
    }
    // The last chunk may carry only the finish reason and usage, with empty text.
    mock.push(Reply::text(&["All ", "done.", ""]));
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert_eq!(text, "All done.");
    assert!(matches!(end, Ok(ChatChunk::Done { .. })));
}

#[tokio::test]
async fn gemini_retries_429_and_5xx_honouring_retry_info() {
    let mock = MockLlm::start().await;
    let p = gemini(&mock);
    mock.push(Reply::rate_limited("0.3s"));
    mock.push(Reply::error(500, "INTERNAL"));
    mock.push(Reply::error(503, "UNAVAILABLE"));
    let started = Instant::now();
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert!(end.is_ok(), "{end:?}");
    assert!(!text.is_empty());
    assert_eq!(mock.requests().len(), 4);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the RetryInfo delay"
    );

    mock.push(Reply::error(504, "DEADLINE_EXCEEDED"));
    assert!(p.generate_json(character_request()).await.is_ok());
    assert_eq!(mock.requests().len(), 6);
}

#[tokio::test]
async fn gemini_gives_up_when_retrying_cannot_help() {
    let mock = MockLlm::start().await;
    let p = gemini(&mock);

    mock.push(Reply::daily_quota());
    let err = p.generate_json(character_request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::RateLimited { daily: true, .. }),
        "{err:?}"
    );
    assert_eq!(mock.requests().len(), 1, "a per-day quota is not retried");

    for (code, status) in [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
    ] {
        let before = mock.requests().len();
        mock.push(Reply::error(code, status));
        let (_, end) = collect(&p, chat_request("hi")).await;
        assert!(matches!(end, Err(LlmError::Rejected(_))), "{code}: {end:?}");
        assert_eq!(mock.requests().len(), before + 1, "{code} is not retried");
    }

    // A RetryInfo delay beyond the retry budget is not waited for.
    let before = mock.requests().len();
    mock.push(Reply::rate_limited("43.7s"));
    let started = Instant::now();
    let (_, end) = collect(&p, chat_request("hi")).await;
    assert!(
        matches!(end, Err(LlmError::RateLimited { daily: false, .. })),
        "{end:?}"
    );
    assert_eq!(mock.requests().len(), before + 1);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Bounded attempts.
    let before = mock.requests().len();
    for _ in 0..4 {
        mock.push(Reply::error(503, "UNAVAILABLE"));
    }
    let (_, end) = collect(&p, chat_request("hi")).await;
    assert!(matches!(end, Err(LlmError::Unavailable(_))), "{end:?}");
    assert_eq!(mock.requests().len(), before + 4);
}

#[tokio::test]
async fn gemini_times_out_a_slow_first_byte() {
    let mock = MockLlm::start().await;
    let mut cfg = gemini_cfg(&mock);
    cfg.retry.max_attempts = 2;
    let p = GeminiProvider::new(cfg);
    mock.push(Reply::Slow {
        delay_ms: 300,
        then: Box::new(Reply::text(&["late ", "but ", "fine"])),
    });
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert_eq!(text, "late but fine");
    assert!(end.is_ok());

    for _ in 0..2 {
        mock.push(Reply::Slow {
            delay_ms: 2000,
            then: Box::new(Reply::text(&["never"])),
        });
    }
    let started = Instant::now();
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert!(text.is_empty());
    assert!(matches!(end, Err(LlmError::Timeout(_))), "{end:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn gemini_reports_cut_offs_and_early_finishes() {
    let mock = MockLlm::start().await;
    let p = gemini(&mock);

    mock.push(Reply::CutOff {
        chunks: vec!["Once ".into(), "upon ".into()],
    });
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert_eq!(text, "Once upon ");
    assert!(matches!(end, Err(LlmError::CutOff(_))), "{end:?}");

    for (finish, reason) in [
        ("SAFETY", FinishReason::Safety),
        ("MAX_TOKENS", FinishReason::MaxTokens),
        ("RECITATION", FinishReason::Recitation),
        ("PROHIBITED_CONTENT", FinishReason::ProhibitedContent),
        (
            "SOMETHING_NEW",
            FinishReason::Unknown("SOMETHING_NEW".into()),
        ),
    ] {
        mock.push(Reply::Text {
            chunks: vec!["Partial ".into(), "text".into()],
            finish: finish.into(),
            chunk_delay_ms: 0,
        });
        let (text, end) = collect(&p, chat_request("hi")).await;
        assert_eq!(
            text, "Partial text",
            "{finish}: the text before the stop is delivered"
        );
        assert_eq!(end, Err(LlmError::Finished(reason)));
    }
    mock.push(Reply::Text {
        chunks: vec!["{\"a\":".into()],
        finish: "MAX_TOKENS".into(),
        chunk_delay_ms: 0,
    });
    assert_eq!(
        p.generate_json(character_request()).await.unwrap_err(),
        LlmError::Finished(FinishReason::MaxTokens)
    );

    mock.push(Reply::Blocked {
        reason: "SAFETY".into(),
    });
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert!(text.is_empty());
    assert_eq!(end, Err(LlmError::PromptBlocked("SAFETY".into())));
    mock.push(Reply::Blocked {
        reason: "OTHER".into(),
    });
    assert_eq!(
        p.generate_json(character_request()).await.unwrap_err(),
        LlmError::PromptBlocked("OTHER".into())
    );
}

#[tokio::test]
async fn dropping_a_stream_closes_the_upstream_request() {
    let mock = MockLlm::start().await;
    let p = gemini(&mock);
    mock.push(Reply::Text {
        chunks: (0..50).map(|i| format!("t{i} ")).collect(),
        finish: "STOP".into(),
        chunk_delay_ms: 30,
    });
    let mut s = p.stream_chat(chat_request("hi"));
    for _ in 0..3 {
        assert!(matches!(s.next().await, Some(Ok(ChatChunk::Delta(_)))));
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    while mock.aborted_streams() == 0 {
        assert!(
            Instant::now() < deadline,
            "the mock never saw the request closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn openai_cfg(mock: &MockLlm, key: Option<&str>) -> OpenAiConfig {
    OpenAiConfig {
        base_url: mock.openai_base_url(),
        api_key: key.map(Secret::new),
        model: "llama3.2".into(),
        sampling: Sampling::default(),
        timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        retry: retry(),
    }
}

fn openai(mock: &MockLlm, key: Option<&str>) -> OpenAiProvider {
    OpenAiProvider::new(openai_cfg(mock, key))
}

/// The same timeout rule as Gemini's: a stream's first byte must come within `timeout`.
#[tokio::test]
async fn openai_compatible_times_out_a_slow_first_byte() {
    let mock = MockLlm::start().await;
    let mut cfg = openai_cfg(&mock, None);
    cfg.timeout = Duration::from_millis(800);
    cfg.retry.max_attempts = 2;
    let p = OpenAiProvider::new(cfg);
    mock.push(Reply::Slow {
        delay_ms: 300,
        then: Box::new(Reply::text(&["late ", "but ", "fine"])),
    });
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert_eq!(text, "late but fine");
    assert!(end.is_ok());

    for _ in 0..2 {
        mock.push(Reply::Slow {
            delay_ms: 2000,
            then: Box::new(Reply::text(&["never"])),
        });
    }
    let started = Instant::now();
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert!(text.is_empty());
    assert!(matches!(end, Err(LlmError::Timeout(_))), "{end:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        mock.requests().len(),
        3,
        "the slow attempt was retried once"
    );
}

#[tokio::test]
async fn openai_compatible_streams_structured_output_and_faults() {
    let mock = MockLlm::start().await;
    let p = openai(&mock, None);
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert_eq!(text, "Hello from the compatible mock.");
    let ChatChunk::Done { usage } = end.unwrap() else {
        panic!()
    };
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (12, 5),
        "usage from the chunk with empty choices"
    );
    let req = &mock.requests()[0];
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["stream_options"]["include_usage"], true);
    assert_eq!(req.body["messages"][0]["role"], "system");
    assert_eq!(req.body["messages"][1]["role"], "assistant");
    assert_eq!(req.api_key, None, "no key configured, none sent");

    let reply = p.generate_json(character_request()).await.unwrap();
    assert!(reply.raw.contains("backstory"));
    assert_eq!(
        mock.requests()[1].body["response_format"]["type"],
        "json_schema"
    );

    let keyed = openai(&mock, Some("sk-local"));
    mock.push(Reply::error(503, "UNAVAILABLE"));
    let (_, end) = collect(&keyed, chat_request("hi")).await;
    assert!(end.is_ok(), "503 retried: {end:?}");
    assert_eq!(
        mock.requests().last().unwrap().api_key.as_deref(),
        Some("Bearer sk-local")
    );

    mock.push(Reply::CutOff {
        chunks: vec!["half ".into()],
    });
    let (text, end) = collect(&p, chat_request("hi")).await;
    assert_eq!(text, "half ");
    assert!(
        matches!(end, Err(LlmError::CutOff(_))),
        "no [DONE], no finish: {end:?}"
    );

    mock.push(Reply::Text {
        chunks: vec!["long".into()],
        finish: "MAX_TOKENS".into(),
        chunk_delay_ms: 0,
    });
    let (_, end) = collect(&p, chat_request("hi")).await;
    assert_eq!(end, Err(LlmError::Finished(FinishReason::MaxTokens)));

    mock.push(Reply::error(401, "UNAUTHENTICATED"));
    let (_, end) = collect(&p, chat_request("hi")).await;
    assert!(matches!(end, Err(LlmError::Rejected(_))));
}
