//! A chat as a tree, on SQLite and Postgres, with the mock model: a reply regenerated is a new
//! version beside the old one, an edit is a new version, and flipping between versions shows
//! each with the conversation that followed it; the last reply can be continued, appending to
//! it; a message deleted hides what follows it on its branch until undone. Nothing is ever
//! overwritten, the model sees only the branch shown, and nothing changes while a reply is being
//! written or in someone else's chat.

use crate::common::*;
use crate::reliability::{gemini_env, new_chat, start_reply, stored, with, words};
use app::chat::{
    ChatEvent, ChatMessage, ContinueReply, DeleteMessage, EditMessage, MessageRole, MessageStatus,
    RegenerateReply, RestoreMessage, SendMessage, ShowVersion,
};
use app::error::AppError;
use mock_llm::{MockLlm, Reply};

on_both_backends!(
    a_regenerated_reply_is_a_new_version_and_each_keeps_its_conversation,
    an_edit_is_a_new_version_and_an_edited_question_can_be_answered,
    the_last_reply_is_continued_where_it_stopped,
    a_deleted_message_hides_its_branch_until_undone,
    nothing_changes_while_a_reply_is_written_or_in_another_chat,
    a_send_from_a_page_the_chat_has_moved_past_is_refused,
    a_regenerated_reply_cut_off_is_kept_beside_the_old_one,
);

pub(crate) fn text(s: &str) -> Reply {
    Reply::Text {
        chunks: s.split_inclusive(' ').map(str::to_string).collect(),
        finish: "STOP".into(),
        chunk_delay_ms: 0,
    }
}

pub(crate) async fn app_with_mock(backend: Backend, mock: &MockLlm) -> TestApp {
    spawn_app_with(backend, &with(&gemini_env(mock), &[]), |_| {}).await
}

/// Sends `text` and reads the whole reply: its id.
pub(crate) async fn say(app: &TestApp, session: &str, text: &str) -> String {
    let events = app
        .stream(SendMessage {
            session_id: session.into(),
            text: text.into(),
            after: None,
        })
        .await
        .rest()
        .await;
    match (events.first(), events.last()) {
        (
            Some(ChatEvent::Accepted { reply_id, .. }),
            Some(ChatEvent::Finished {
                status: MessageStatus::Complete,
            }),
        ) => reply_id.clone(),
        _ => panic!("{events:?}"),
    }
}

/// Regenerates (`more: false`) or continues the reply from `message`, to its end: the events.
async fn again(app: &TestApp, session: &str, message: &str, more: bool) -> Vec<ChatEvent> {
    let (session_id, message_id) = (session.to_string(), message.to_string());
    let mut stream = if more {
        app.stream(ContinueReply {
            session_id,
            message_id,
        })
        .await
    } else {
        app.stream(RegenerateReply {
            session_id,
            message_id,
        })
        .await
    };
    stream.rest().await
}

/// The chat as its page shows it: (who, text, version, versions) per message.
async fn shown(app: &TestApp, character: &str) -> Vec<(MessageRole, String, u32, u32)> {
    described(&open_chat(app, character).await.messages)
}

fn described(messages: &[ChatMessage]) -> Vec<(MessageRole, String, u32, u32)> {
    messages
        .iter()
        .map(|m| (m.role, m.content.clone(), m.version, m.versions))
        .collect()
}

fn texts(messages: &[(MessageRole, String, u32, u32)]) -> Vec<&str> {
    messages.iter().map(|m| m.1.as_str()).collect()
}

/// The turns of the model's last request: (role, text).
pub(crate) fn last_prompt(mock: &MockLlm) -> Vec<(String, String)> {
    let requests = mock.requests();
    turns_of(&requests.last().expect("a model request").body)
}

/// The turns of a Gemini request's body: (role, text).
pub(crate) fn turns_of(body: &serde_json::Value) -> Vec<(String, String)> {
    body["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .map(|c| {
            let text: String = c["parts"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect();
            (c["role"].as_str().unwrap().to_string(), text)
        })
        .collect()
}

async fn show(app: &TestApp, session: &str, message: &str, version: u32) -> Vec<ChatMessage> {
    app.call(ShowVersion {
        session_id: session.into(),
        message_id: message.into(),
        version,
    })
    .await
    .unwrap()
    .messages
}

async fn a_regenerated_reply_is_a_new_version_and_each_keeps_its_conversation(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    let (character, session) = new_chat(&app).await;
    let greeting = open_chat(&app, &character).await.messages[0]
        .content
        .clone();
    mock.push(text("First answer."));
    let first = say(&app, &session, "Hello?").await;

    mock.push(text("Second answer."));
    let events = again(&app, &session, &first, false).await;
    // The page is told what it now shows (up to the question) and the new reply, version 2 of 2.
    let Some(ChatEvent::Replying {
        messages, reply, ..
    }) = events.first()
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        texts(&described(messages)),
        [greeting.as_str(), "Hello?"],
        "{events:?}"
    );
    assert_eq!(
        (reply.content.as_str(), reply.version, reply.versions),
        ("", 2, 2)
    );
    assert_eq!(deltas(&events), "Second answer.");
    let second = reply.id.clone();
    // The model saw the branch up to the question, not the answer it replaces.
    let prompt = last_prompt(&mock);
    assert_eq!(prompt.last().unwrap(), &("user".into(), "Hello?".into()));
    assert!(
        !prompt.iter().any(|(_, t)| t.contains("First answer")),
        "{prompt:?}"
    );

    let chat = shown(&app, &character).await;
    assert_eq!(
        chat.last().unwrap(),
        &(MessageRole::Assistant, "Second answer.".into(), 2, 2)
    );
    // The first version is kept, and shown again on request.
    assert_eq!(
        stored(&app, &first).await,
        ("complete".into(), "First answer.".into())
    );
    let page = show(&app, &session, &second, 1).await;
    assert_eq!(
        described(&page).last().unwrap(),
        &(MessageRole::Assistant, "First answer.".into(), 1, 2)
    );

    // The conversation goes on from version 1; flipping to version 2 and back shows each with
    // what followed it.
    mock.push(text("Then the sea."));
    say(&app, &session, "And then?").await;
    assert_eq!(
        texts(&shown(&app, &character).await),
        [
            greeting.as_str(),
            "Hello?",
            "First answer.",
            "And then?",
            "Then the sea."
        ]
    );
    let page = show(&app, &session, &first, 2).await;
    assert_eq!(
        texts(&described(&page)),
        [greeting.as_str(), "Hello?", "Second answer."]
    );
    let page = show(&app, &session, &second, 1).await;
    assert_eq!(
        texts(&described(&page)),
        [
            greeting.as_str(),
            "Hello?",
            "First answer.",
            "And then?",
            "Then the sea."
        ]
    );
    // What the model is sent next is the branch shown.
    mock.push(text("Fine."));
    say(&app, &session, "Go on.").await;
    let prompt = last_prompt(&mock);
    assert!(
        prompt.iter().any(|(_, t)| t == "Then the sea."),
        "{prompt:?}"
    );
    assert!(
        !prompt.iter().any(|(_, t)| t.contains("Second answer")),
        "{prompt:?}"
    );

    // There is no version 3, and the greeting (which answers nothing) is not regenerated.
    assert!(matches!(
        app.call(ShowVersion {
            session_id: session.clone(),
            message_id: first.clone(),
            version: 3,
        })
        .await,
        Err(AppError::BadRequest(_))
    ));
    let greeting_id = open_chat(&app, &character).await.messages[0].id.clone();
    let refused = app
        .refusal(RegenerateReply {
            session_id: session.clone(),
            message_id: greeting_id,
        })
        .await;
    assert!(matches!(refused, AppError::BadRequest(_)), "{refused:?}");
    // Every message is still there: greeting, 3 questions, 4 replies.
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM chat_messages WHERE session_id = '{session}'")
        )
        .await,
        8
    );
}

async fn an_edit_is_a_new_version_and_an_edited_question_can_be_answered(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    let (character, session) = new_chat(&app).await;
    mock.push(text("Hi back."));
    say(&app, &session, "Hi").await;
    let question = open_chat(&app, &character).await.messages[1].clone();
    assert_eq!(question.content, "Hi");

    // A question edited: a new version, shown with nothing after it yet.
    let page = app
        .call(EditMessage {
            session_id: session.clone(),
            message_id: question.id.clone(),
            text: "  Hello there\r\n".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        described(&page.messages).last().unwrap(),
        &(MessageRole::User, "Hello there".into(), 2, 2)
    );
    let edited = page.messages.last().unwrap().id.clone();
    // Answered on request: a reply to the edited question.
    mock.push(text("Hello to you."));
    let events = again(&app, &session, &edited, false).await;
    assert_eq!(deltas(&events), "Hello to you.");
    assert_eq!(
        last_prompt(&mock).last().unwrap(),
        &("user".into(), "Hello there".into())
    );
    assert_eq!(
        texts(&shown(&app, &character).await)[1..],
        ["Hello there", "Hello to you."]
    );
    // The old question is kept with its answer.
    let page = show(&app, &session, &edited, 1).await;
    assert_eq!(texts(&described(&page))[1..], ["Hi", "Hi back."]);

    // A reply edited, longer than a user may write; the old one kept.
    let reply = page.last().unwrap().id.clone();
    let long = "A long reply. ".repeat(400);
    let page = app
        .call(EditMessage {
            session_id: session.clone(),
            message_id: reply.clone(),
            text: long.clone(),
        })
        .await
        .unwrap();
    let last = page.messages.last().unwrap();
    assert_eq!(
        (last.content.as_str(), last.version, last.versions),
        (long.trim(), 2, 2)
    );
    assert_eq!(stored(&app, &reply).await.1, "Hi back.");

    // Bounds: nothing empty, a question no longer than a message may be; nothing saved.
    let before = count(&app, "SELECT COUNT(*) FROM chat_messages").await;
    for (id, bad) in [(&reply, " ".to_string()), (&question.id, "x".repeat(4001))] {
        let refused = app
            .call(EditMessage {
                session_id: session.clone(),
                message_id: id.clone(),
                text: bad,
            })
            .await;
        assert!(
            matches!(refused, Err(AppError::BadRequest(_))),
            "{refused:?}"
        );
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM chat_messages").await,
        before
    );
}

async fn the_last_reply_is_continued_where_it_stopped(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    let (character, session) = new_chat(&app).await;
    mock.push(Reply::CutOff {
        chunks: vec!["Once upon ".into(), "a time".into()],
    });
    let events = app
        .stream(SendMessage {
            session_id: session.clone(),
            text: "A story?".into(),
            after: None,
        })
        .await
        .rest()
        .await;
    let Some(ChatEvent::Accepted { reply_id, .. }) = events.first() else {
        panic!("{events:?}")
    };
    let reply = reply_id.clone();
    assert_eq!(
        stored(&app, &reply).await,
        ("failed".into(), "Once upon a time".into())
    );

    mock.push(text(" there was a lighthouse."));
    let events = again(&app, &session, &reply, true).await;
    let Some(ChatEvent::Replying {
        reply: shown_reply,
        messages,
        ..
    }) = events.first()
    else {
        panic!("{events:?}")
    };
    // The page keeps the text so far and adds to it.
    assert_eq!(shown_reply.content, "Once upon a time");
    assert_eq!(messages.last().unwrap().content, "A story?");
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Complete
        })
    );
    assert_eq!(
        stored(&app, &reply).await,
        (
            "complete".into(),
            "Once upon a time there was a lighthouse.".into()
        )
    );
    // The model saw what it had written, and was asked to go on.
    let prompt = last_prompt(&mock);
    let n = prompt.len();
    assert_eq!(prompt[n - 2], ("model".into(), "Once upon a time".into()));
    assert_eq!(prompt[n - 1].0, "user");
    assert!(
        prompt[n - 1].1.contains("Continue your last reply"),
        "{prompt:?}"
    );
    let chat = shown(&app, &character).await;
    assert_eq!(chat.len(), 3, "one reply, continued: {chat:?}");

    // Only the last reply, and only a reply.
    mock.push(text("Sure."));
    say(&app, &session, "More?").await;
    let question = open_chat(&app, &character).await.messages[3].id.clone();
    for id in [reply, question] {
        let refused = app
            .refusal(ContinueReply {
                session_id: session.clone(),
                message_id: id,
            })
            .await;
        assert!(matches!(refused, AppError::BadRequest(_)), "{refused:?}");
    }
}

async fn a_deleted_message_hides_its_branch_until_undone(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    let (character, session) = new_chat(&app).await;
    mock.push(text("One."));
    let one = say(&app, &session, "First?").await;
    mock.push(text("Two."));
    say(&app, &session, "Second?").await;
    let chat = open_chat(&app, &character).await.messages;
    let second_question = chat[3].id.clone();

    // Deleting a question hides it and its answer; the chat ends where it was before.
    let page = app
        .call(DeleteMessage {
            session_id: session.clone(),
            message_id: second_question.clone(),
        })
        .await
        .unwrap();
    assert_eq!(texts(&described(&page.messages))[1..], ["First?", "One."]);
    assert_eq!(
        texts(&shown(&app, &character).await)[1..],
        ["First?", "One."]
    );
    // Kept, only marked; and the chat list's preview follows.
    assert_eq!(stored(&app, &second_question).await.1, "Second?");
    // Undo.
    let page = app
        .call(RestoreMessage {
            session_id: session.clone(),
            message_id: second_question.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        texts(&described(&page.messages))[1..],
        ["First?", "One.", "Second?", "Two."]
    );

    // A version deleted: the one before it takes its place.
    mock.push(text("Uno."));
    let events = again(&app, &session, &one, false).await;
    let Some(ChatEvent::Replying { reply, .. }) = events.first() else {
        panic!("{events:?}")
    };
    let uno = reply.id.clone();
    let page = app
        .call(DeleteMessage {
            session_id: session.clone(),
            message_id: uno.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        described(&page.messages)[2..],
        [
            (MessageRole::Assistant, "One.".into(), 1, 1),
            (MessageRole::User, "Second?".into(), 1, 1),
            (MessageRole::Assistant, "Two.".into(), 1, 1),
        ]
    );
    // A deleted message is not shown, edited or deleted again; it is restored once.
    let refused = app
        .call(ShowVersion {
            session_id: session.clone(),
            message_id: uno.clone(),
            version: 1,
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let page = app
        .call(RestoreMessage {
            session_id: session.clone(),
            message_id: uno.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        described(&page.messages).last().unwrap(),
        &(MessageRole::Assistant, "Uno.".into(), 2, 2)
    );
    let refused = app
        .call(RestoreMessage {
            session_id: session.clone(),
            message_id: uno.clone(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));

    // The chat's first message stays (it is edited instead).
    let greeting = open_chat(&app, &character).await.messages[0].id.clone();
    let refused = app
        .call(DeleteMessage {
            session_id: session.clone(),
            message_id: greeting,
        })
        .await;
    assert!(
        matches!(refused, Err(AppError::BadRequest(_))),
        "{refused:?}"
    );

    // What is hidden under a deleted message is not there to change, and comes back only after
    // the message above it.
    let delete = |id: &str| {
        app.call(DeleteMessage {
            session_id: session.clone(),
            message_id: id.to_string(),
        })
    };
    let restore = |id: &str| {
        app.call(RestoreMessage {
            session_id: session.clone(),
            message_id: id.to_string(),
        })
    };
    let page = show(&app, &session, &uno, 1).await;
    let (first_question, two) = (page[1].id.clone(), page[4].id.clone());
    delete(&second_question).await.unwrap();
    let page = delete(&first_question).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    let refused = app
        .call(EditMessage {
            session_id: session.clone(),
            message_id: two,
            text: "Changed".into(),
        })
        .await;
    assert_eq!(refused, Err(AppError::NotFound));
    let refused = restore(&second_question).await;
    assert!(
        matches!(refused, Err(AppError::BadRequest(_))),
        "{refused:?}"
    );
    let page = restore(&first_question).await.unwrap();
    assert_eq!(texts(&described(&page.messages))[1..], ["First?", "Uno."]);

    // Deleting a version not shown leaves the chat as it is shown.
    let page = delete(&one).await.unwrap();
    assert_eq!(
        described(&page.messages)[1..],
        [
            (MessageRole::User, "First?".into(), 1, 1),
            (MessageRole::Assistant, "Uno.".into(), 1, 1),
        ]
    );
}

async fn nothing_changes_while_a_reply_is_written_or_in_another_chat(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    let (character, session) = new_chat(&app).await;
    mock.push(text("Done."));
    let first = say(&app, &session, "Hi").await;
    mock.push(words(40, 40));
    let (mut reply, reply_id, _) = start_reply(&app, &session, "Talk a while").await;
    let before = count(&app, "SELECT COUNT(*) FROM chat_messages").await;

    // While it is written: every change is refused with the chat's sentence.
    let busy = AppError::Conflict(app::chat::service::BUSY.into());
    let edit = app
        .call(EditMessage {
            session_id: session.clone(),
            message_id: first.clone(),
            text: "Changed".into(),
        })
        .await;
    assert_eq!(edit, Err(busy.clone()));
    let delete = app
        .call(DeleteMessage {
            session_id: session.clone(),
            message_id: first.clone(),
        })
        .await;
    assert_eq!(delete, Err(busy.clone()));
    let regenerate = app
        .refusal(RegenerateReply {
            session_id: session.clone(),
            message_id: first.clone(),
        })
        .await;
    assert_eq!(regenerate, busy);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM chat_messages").await,
        before
    );
    reply.rest().await;
    assert_eq!(stored(&app, &reply_id).await.0, "complete");

    // Someone else naming this chat's message in their own chat finds nothing; nothing changes.
    let before = count(&app, "SELECT COUNT(*) FROM chat_messages").await;
    sign_in_as_someone_else(&app).await;
    let theirs = save_character(&app, "Theirs").await;
    let their_session = open_chat(&app, &theirs).await.session_id;
    for (session_id, message_id) in [(&their_session, &first), (&session, &first)] {
        let refused = app
            .call(EditMessage {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                text: "Mine now".into(),
            })
            .await;
        assert_eq!(refused, Err(AppError::NotFound));
    }
    // (Their chat's greeting is one more message.)
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM chat_messages").await,
        before + 1
    );
    assert_eq!(stored(&app, &first).await.1, "Done.");
    let _ = character;
}

async fn a_send_from_a_page_the_chat_has_moved_past_is_refused(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    let (_, session) = new_chat(&app).await;
    mock.push(text("First."));
    let first = say(&app, &session, "Hi").await;
    mock.push(text("Second."));
    let events = again(&app, &session, &first, false).await;
    let Some(ChatEvent::Replying { reply, .. }) = events.first() else {
        panic!("{events:?}")
    };
    let second = reply.id.clone();
    // One tab shows the second version; another flips back to the first.
    show(&app, &session, &second, 1).await;
    let before = count(&app, "SELECT COUNT(*) FROM chat_messages").await;
    let send = |after: &str| SendMessage {
        session_id: session.clone(),
        text: "And so?".into(),
        after: Some(after.to_string()),
    };
    let refused = app.refusal(send(&second)).await;
    assert_eq!(
        refused,
        AppError::Conflict(app::chat::service::MOVED.into())
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM chat_messages").await,
        before
    );
    // From the page that shows the chat's end, it is sent after it.
    mock.push(text("So on."));
    let events = app.stream(send(&first)).await.rest().await;
    assert_eq!(deltas(&events), "So on.");
    let prompt = last_prompt(&mock);
    assert!(prompt.iter().any(|(_, t)| t == "First."), "{prompt:?}");
    assert!(!prompt.iter().any(|(_, t)| t == "Second."), "{prompt:?}");
}

async fn a_regenerated_reply_cut_off_is_kept_beside_the_old_one(backend: Backend) {
    let mock = MockLlm::start().await;
    let app = app_with_mock(backend, &mock).await;
    let (character, session) = new_chat(&app).await;
    mock.push(text("The whole answer."));
    let first = say(&app, &session, "Well?").await;
    // The new version is cut off mid-way: what arrived is kept and marked, the old one untouched.
    mock.push(Reply::CutOff {
        chunks: vec!["Half an ".into()],
    });
    let events = again(&app, &session, &first, false).await;
    assert!(
        matches!(events.last(), Some(ChatEvent::Failed { .. })),
        "{events:?}"
    );
    let chat = shown(&app, &character).await;
    assert_eq!(
        chat.last().unwrap(),
        &(MessageRole::Assistant, "Half an ".into(), 2, 2)
    );
    assert_eq!(
        stored(&app, &first).await,
        ("complete".into(), "The whole answer.".into())
    );
    // Continued, it is finished; a 503 on another regenerate leaves a third, empty, failed version
    // and the chat usable.
    let cut = open_chat(&app, &character)
        .await
        .messages
        .last()
        .unwrap()
        .id
        .clone();
    mock.push(text("answer."));
    again(&app, &session, &cut, true).await;
    assert_eq!(
        stored(&app, &cut).await,
        ("complete".into(), "Half an answer.".into())
    );
    for _ in 0..3 {
        mock.push(Reply::Error {
            code: 503,
            status: "UNAVAILABLE".into(),
            message: "down".into(),
            retry_delay: None,
            quota_id: None,
        });
    }
    let events = again(&app, &session, &cut, false).await;
    assert!(
        matches!(events.last(), Some(ChatEvent::Failed { .. })),
        "{events:?}"
    );
    let chat = shown(&app, &character).await;
    assert_eq!(chat.last().unwrap().2..=chat.last().unwrap().3, 3..=3);
    let page = show(&app, &session, &cut, 2).await;
    assert_eq!(page.last().unwrap().content, "Half an answer.");
}
