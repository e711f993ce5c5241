//! The digital twin through the server, on SQLite and Postgres: created, edited, reordered and
//! saved with the domain's validation; Shades suggested (offline, and through Gemini with its
//! recovery, repair and faults) and never saved until the user saves them; the twin page renders.

use crate::common::*;
use app::auth::GetCurrentUser;
use app::domain::{ShadeDraft, ShadeQuestionnaire, ShadeSource, SuggestedShades, TwinDraft};
use app::error::AppError;
use app::twins::{GetTwin, SaveTwin, SuggestShades, TwinView};
use mock_llm::Reply;

on_both_backends!(
    a_twin_is_created_edited_reordered_and_saved,
    invalid_twins_are_refused_field_by_field,
    shades_are_suggested_offline_and_nothing_is_saved,
    shades_are_suggested_through_gemini_with_repair_and_faults,
    each_user_has_their_own_twin,
    the_twin_page_renders_without_javascript,
    chatting_with_your_twin_uses_the_chat_engine,
    the_twin_speaks_from_its_shades_through_gemini,
);

async fn chatting_with_your_twin_uses_the_chat_engine(backend: Backend) {
    use app::chat::{ChatEvent, MessageStatus, OpenTwinChat};
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    // No twin yet: a sentence, and nothing written.
    let err = app.call(OpenTwinChat {}).await.unwrap_err();
    assert!(
        matches!(&err, AppError::BadRequest(m) if m.contains("Create your twin first")),
        "{err:?}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 0);

    save(&app, twin(vec![shade("Night owl", "🌙")]))
        .await
        .unwrap();
    // Opened from two tabs at once: one chat, one greeting.
    let (a, b) = tokio::join!(app.call(OpenTwinChat {}), app.call(OpenTwinChat {}));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.session_id, b.session_id);
    assert!(a.twin && a.character_id.is_empty());
    assert_eq!(a.character_name, "Ada");
    assert_eq!(a.messages.len(), 1, "the greeting");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 1);

    let (events, _) = send_message(&app, &a.session_id, "What do we do at night?").await;
    assert!(!deltas(&events).is_empty());
    assert!(events.iter().any(|e| matches!(
        e,
        ChatEvent::Finished {
            status: MessageStatus::Complete
        }
    )));
    let again = app.call(OpenTwinChat {}).await.unwrap();
    assert_eq!(again.messages.len(), 3, "every turn kept");
    assert_eq!(again.messages[1].content, "What do we do at night?");

    // Someone else cannot send in it or read it.
    let other = app.another_browser();
    other.sign_in_local().await;
    let html = app.html("/twin/chat").await;
    assert!(
        html.contains("What do we do at night?"),
        "the page renders the chat"
    );
    let res = app
        .request(
            &new_client(),
            app::chat::EarlierMessages {
                session_id: a.session_id.clone(),
                before: 3,
            },
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

async fn the_twin_speaks_from_its_shades_through_gemini(backend: Backend) {
    use app::chat::OpenTwinChat;
    let (app, mock) = app_with_gemini(backend, 2).await;
    let mut draft = twin(vec![shade("Night owl", "🌙"), shade("Cook", "🍳")]);
    draft.shades[0].confidence = 0.9;
    save(&app, draft).await.unwrap();
    let chat = app.call(OpenTwinChat {}).await.unwrap();
    assert!(!chat.offline);
    mock.push(Reply::text(&["We ", "stay ", "up."]));
    let (events, _) = send_message(&app, &chat.session_id, "Sundays?").await;
    assert_eq!(deltas(&events), "We stay up.");
    let body = &mock.requests()[0].body;
    let system = body["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(system.contains("digital twin of Ada"), "{system}");
    assert!(system.contains("Maps and moss."), "the bio");
    assert!(
        system.contains("🌙 Night owl (sure): You are Night owl. [from: walks, tea]"),
        "{system}"
    );
    assert!(system.contains("🍳 Cook (likely)"));
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM chat_messages WHERE role = 'assistant' AND content = 'We stay up.'").await,
        1
    );
}

fn shade(name: &str, icon: &str) -> ShadeDraft {
    ShadeDraft {
        name: name.into(),
        icon: icon.into(),
        description: format!("You are {name}."),
        confidence: 0.7,
        topics: "walks, tea".into(),
        source: ShadeSource::User,
        public: false,
    }
}

fn twin(shades: Vec<ShadeDraft>) -> TwinDraft {
    TwinDraft {
        name: "Ada".into(),
        bio: "Maps and moss.".into(),
        matchable: false,
        shades,
    }
}

async fn save(app: &TestApp, draft: TwinDraft) -> Result<TwinView, AppError> {
    app.call(SaveTwin { twin: draft }).await
}

async fn a_twin_is_created_edited_reordered_and_saved(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let me = app.call(GetCurrentUser {}).await.unwrap().unwrap();
    let before = app.call(GetTwin {}).await.unwrap();
    assert!(!before.exists);
    assert_eq!(
        before.draft.name, me.display_name,
        "a new twin starts from the user's name"
    );
    assert!(before.draft.shades.is_empty());
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM twins").await,
        0,
        "a GET writes nothing"
    );
    let dashboard = app.html("/dashboard").await;
    assert!(dashboard.contains("You have no twin yet"), "{dashboard}");

    let mut draft = twin(vec![shade("Night owl", "🌙"), shade("Cook", "👩🏽‍🍳")]);
    draft.shades[1].public = true;
    let saved = save(&app, draft.clone()).await.unwrap();
    assert!(saved.exists);
    let dashboard = app.html("/dashboard").await;
    assert!(dashboard.contains("2 Shades · private"), "{dashboard}");
    let brief = app.call(app::twins::TwinSummary {}).await.unwrap().unwrap();
    assert_eq!(
        (brief.name.as_str(), brief.shades, brief.matchable),
        ("Ada", 2, false)
    );
    assert_eq!(saved.draft, draft);
    assert_eq!(app.call(GetTwin {}).await.unwrap().draft, draft);

    // Reorder, edit one, delete one, add one: exactly what is sent is kept, in that order.
    let mut edited = draft.clone();
    edited.shades.swap(0, 1);
    edited.shades[0].description = "You cook for everyone.".into();
    edited.shades[0].topics = "food, friends".into();
    edited.shades.remove(1);
    edited.shades.push(shade("Walker", "🚶"));
    edited.matchable = true;
    edited.bio = String::new();
    save(&app, edited.clone()).await.unwrap();
    let now = app.call(GetTwin {}).await.unwrap();
    assert_eq!(now.draft, edited);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM shades").await, 2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM twins").await, 1);

    // All Shades deleted is a valid twin.
    save(&app, twin(vec![])).await.unwrap();
    assert_eq!(count(&app, "SELECT COUNT(*) FROM shades").await, 0);
}

async fn invalid_twins_are_refused_field_by_field(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let mut bad = twin(vec![shade("Night owl", "x"), shade("night owl", "🌙")]);
    bad.name = " ".into();
    bad.shades[1].confidence = 1.5;
    let Err(AppError::Invalid(errs)) = save(&app, bad).await else {
        panic!("an invalid twin was not refused");
    };
    assert!(errs.get("name").is_some());
    assert!(errs.get("shades.0.icon").unwrap().contains("one emoji"));
    assert!(errs.get("shades.1.name").unwrap().contains("already"));
    assert!(errs.get("shades.1.confidence").is_some());

    let many = twin(vec![shade("A", "🌙"); TwinDraft::MAX_SHADES + 1]);
    let Err(AppError::Invalid(errs)) = save(&app, many).await else {
        panic!("too many Shades were not refused");
    };
    assert!(errs.get("shades").unwrap().contains("at most"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM twins").await, 0);

    // A body over the endpoint's limit is refused before it is read.
    let huge = twin(vec![
        ShadeDraft {
            description: "x".repeat(app::domain::TwinDraft::MAX_CHARS * 13),
            ..shade("A", "🌙")
        };
        1
    ]);
    let res = app.send(SaveTwin { twin: huge }).await;
    assert_eq!(res.status(), 413);
}

fn answers(first: &str) -> ShadeQuestionnaire {
    ShadeQuestionnaire {
        answers: vec![
            first.into(),
            String::new(),
            "I read old novels at night.".into(),
        ],
        bio: String::new(),
    }
}

async fn shades_are_suggested_offline_and_nothing_is_saved(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let got = app
        .call(SuggestShades {
            questionnaire: answers("I hike and explore new trails."),
            variation: 0,
        })
        .await
        .unwrap();
    assert!(got.offline, "labelled as the offline writer's");
    assert!((SuggestedShades::MIN..=SuggestedShades::MAX).contains(&got.shades.len()));
    assert!(got
        .shades
        .iter()
        .all(|s| s.source == ShadeSource::Suggested && !s.public));
    let names: Vec<&str> = got.shades.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"Explorer") && names.contains(&"Reader"),
        "{names:?}"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM shades").await,
        0,
        "nothing saved"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'shades' AND outcome = 'ok'"
        )
        .await,
        1,
        "the call is recorded"
    );

    // Accepting them is saving them: they validate as a twin's Shades.
    let saved = save(&app, twin(got.shades.clone())).await.unwrap();
    assert_eq!(saved.draft.shades, got.shades);

    // Nothing to go on: a field error, and no model call.
    let empty = ShadeQuestionnaire {
        answers: vec!["  ".into(); 3],
        bio: String::new(),
    };
    let err = app
        .call(SuggestShades {
            questionnaire: empty,
            variation: 0,
        })
        .await
        .unwrap_err();
    let AppError::Invalid(errs) = err else {
        panic!("{err:?}")
    };
    assert!(errs.get("questionnaire").is_some());
    let too_many = ShadeQuestionnaire {
        answers: vec!["x".into(); 11],
        bio: String::new(),
    };
    assert!(matches!(
        app.call(SuggestShades {
            questionnaire: too_many,
            variation: 0
        })
        .await,
        Err(AppError::Invalid(_))
    ));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM generations").await, 1);
}

async fn shades_are_suggested_through_gemini_with_repair_and_faults(backend: Backend) {
    let (app, mock) = app_with_gemini(backend, 2).await;
    let suggest = || {
        app.call(SuggestShades {
            questionnaire: answers("Photos of moss."),
            variation: 0,
        })
    };
    let got = suggest().await.unwrap();
    assert!(!got.offline);
    assert_eq!(got.shades[0].name, "Patient listener");
    assert_eq!(
        got.shades[0].topics, "moss",
        "the answers reached the model"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].body["generationConfig"]["responseJsonSchema"],
        SuggestedShades::schema(),
        "the schema sent is the validator's"
    );
    let prompt = reqs[0].body["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(prompt.contains("Photos of moss.") && prompt.contains("I read old novels"));
    assert!(
        !prompt.contains("What do friends come to you for?"),
        "blank answers are left out"
    );

    // A model that fills the schema literally, past its limits: mended without a second call
    // where it can be (texts cut, enum values normalised, extra items dropped); its Shades all
    // share one name, which cannot be mended, so one repair is asked for.
    mock.push(Reply::FillSchema { over: 1.5 });
    let got = suggest().await.unwrap();
    assert_eq!(
        got.shades[0].name, "Patient listener",
        "the repair's answer"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    let repair = reqs[2].body["contents"].as_array().unwrap();
    assert_eq!(
        repair.len(),
        3,
        "prompt, the invalid reply, the correction request"
    );
    assert!(repair[2]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("two Shades are named"));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'shades_repair' AND outcome = 'ok'"
        )
        .await,
        1
    );

    // Answers at the schema's limits, all distinct: accepted as they are.
    let mut literal = mock_llm::fill_schema(&SuggestedShades::schema(), 1.0);
    for (i, s) in literal["shades"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        s["name"] = serde_json::json!(format!("Facet {i}"));
    }
    mock.push(Reply::Json { value: literal });
    let got = suggest().await.unwrap();
    assert_eq!(got.shades.len(), SuggestedShades::MAX);
    assert_eq!(mock.requests().len(), 4, "no repair needed");

    // The provider failing: a clear sentence, nothing saved, the call recorded.
    for _ in 0..2 {
        mock.push(Reply::error(503, "UNAVAILABLE"));
    }
    let err = suggest().await.unwrap_err();
    let AppError::Provider(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("unavailable"), "{message}");
    assert!(!message.contains("503"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM shades").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'shades' AND outcome = 'unavailable'"
        )
        .await,
        1
    );
}

async fn each_user_has_their_own_twin(backend: Backend) {
    let app = spawn_app(backend).await;
    // Someone else's twin, with a Shade from SecondMe, through the store.
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    let theirs = twin(vec![shade("Secret", "🔒")]).parse().unwrap();
    app::twins::store::save(&app.db, &app::auth::UserId(other.id.clone()), &theirs)
        .await
        .unwrap();

    app.sign_in_local().await;
    let mine = app.call(GetTwin {}).await.unwrap();
    assert!(!mine.exists, "another user's twin is not mine");
    save(&app, twin(vec![shade("Mine", "🌙")])).await.unwrap();
    let row = app::twins::store::find(&app.db, &app::auth::UserId(other.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.shades.len(), 1);
    assert_eq!(
        row.shades[0].name, "Secret",
        "saving mine leaves theirs alone"
    );
    let html = app.html("/twin").await;
    assert!(html.contains("Mine") && !html.contains("Secret"));
}

async fn the_twin_page_renders_without_javascript(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let html = app.html("/twin").await;
    assert!(html.contains("No twin yet"), "{html}");
    assert!(html.contains("Editing your twin needs JavaScript"));
    assert!(html.contains("What do you do on a free afternoon?"));
    let mut draft = twin(vec![shade("Night owl", "🌙")]);
    draft.matchable = true;
    draft.shades[0].public = true;
    save(&app, draft).await.unwrap();
    let html = app.html("/twin").await;
    assert!(html.contains("data-testid=\"twin-profile\""));
    assert!(html.contains("Night owl") && html.contains("Maps and moss."));
    assert!(html.contains("likely (70%)"), "confidence in words");
    assert!(html.contains("Open to matches"));
    assert!(
        html.contains(r#"value="Night owl""#),
        "the editor's fields carry their values"
    );
}
