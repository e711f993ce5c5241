//! A character's life after it is saved: its page, edit, duplicate, delete to the trash, undo
//! and restore, and removal for good after the trash's days — through the server functions and,
//! without JavaScript, through the pages and plain form posts. On SQLite and Postgres.

use crate::common::*;
use app::characters::{
    DeleteCharacter, DuplicateCharacter, GetCharacter, ListCharacterPage, ListTrash,
    RegenerateSection, RestoreCharacter, UpdateCharacter, TRASH_DAYS,
};
use app::chat::{OpenChat, SendMessage};
use app::domain::Section;
use app::error::AppError;
use leptos::server_fn::ServerFn;
use mock_llm::{MockLlm, Reply};

on_both_backends!(
    a_saved_character_can_be_edited_and_duplicated,
    a_deleted_character_and_its_chats_wait_in_the_trash,
    the_trash_is_emptied_after_its_days,
    the_character_pages_work_without_javascript,
    one_section_is_written_again_and_the_rest_kept,
    a_section_from_a_model_is_checked_like_the_whole,
);

async fn signed_in(backend: Backend) -> TestApp {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    app
}

async fn get(app: &TestApp, id: &str) -> Result<app::characters::CharacterView, AppError> {
    app.call(GetCharacter { id: id.into() }).await
}

async fn a_saved_character_can_be_edited_and_duplicated(backend: Backend) {
    let app = signed_in(backend).await;
    let id = save_character(&app, "Mira").await;
    let mut edited = get(&app, &id).await.unwrap().draft;
    edited.name = "Mira Voss".into();
    edited.backstory = "She kept the lighthouse alone for nine winters.".into();
    assert_eq!(
        app.call(UpdateCharacter {
            id: id.clone(),
            draft: edited.clone(),
        })
        .await,
        Ok(id.clone())
    );
    let saved = get(&app, &id).await.unwrap();
    assert_eq!(saved.draft, edited);
    assert!(saved.updated_at >= saved.created_at);

    // The same validation as on save, field by field.
    let mut bad = edited.clone();
    bad.name = String::new();
    let Err(AppError::Invalid(errs)) = app
        .call(UpdateCharacter {
            id: id.clone(),
            draft: bad,
        })
        .await
    else {
        panic!("an empty name must be refused")
    };
    assert!(errs.get("name").is_some(), "{errs:?}");
    assert_eq!(get(&app, &id).await.unwrap().draft, edited, "unchanged");

    let copy = app
        .call(DuplicateCharacter { id: id.clone() })
        .await
        .unwrap();
    assert_ne!(copy, id);
    let copied = get(&app, &copy).await.unwrap().draft;
    assert_eq!(copied.name, "Mira Voss (copy)");
    assert_eq!(copied.backstory, edited.backstory);
    let page = app
        .call(ListCharacterPage {
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(page.characters.len(), 2);
}

async fn a_deleted_character_and_its_chats_wait_in_the_trash(backend: Backend) {
    let app = signed_in(backend).await;
    let keep = save_character(&app, "Keep").await;
    let id = save_character(&app, "Mira").await;
    let chat = open_chat(&app, &id).await;
    send_message(&app, &chat.session_id, "hello").await;

    app.call(DeleteCharacter { id: id.clone() }).await.unwrap();
    // Gone from everywhere but the trash: the dashboard, its page, its chat.
    let page = app
        .call(ListCharacterPage {
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    let ids: Vec<&str> = page.characters.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [keep.as_str()]);
    assert_eq!(get(&app, &id).await, Err(AppError::NotFound));
    assert_eq!(
        app.call(OpenChat {
            character_id: id.clone()
        })
        .await
        .map(|_| ()),
        Err(AppError::NotFound)
    );
    assert_eq!(
        app.refusal(SendMessage {
            session_id: chat.session_id.clone(),
            text: "anyone there?".into(),
            after: None,
        })
        .await,
        AppError::NotFound
    );
    // Deleting twice, or editing it in the trash, finds nothing.
    assert_eq!(
        app.call(DeleteCharacter { id: id.clone() }).await,
        Err(AppError::NotFound)
    );
    let trash = app.call(ListTrash {}).await.unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(
        (trash[0].id.as_str(), trash[0].name.as_str()),
        (id.as_str(), "Mira")
    );

    // Restored, it comes back with its chat, every message kept.
    app.call(RestoreCharacter { id: id.clone() }).await.unwrap();
    assert!(app.call(ListTrash {}).await.unwrap().is_empty());
    let reopened = open_chat(&app, &id).await;
    assert_eq!(reopened.session_id, chat.session_id);
    assert_eq!(reopened.messages.len(), 3, "greeting, message, reply");
    assert_eq!(
        app.call(RestoreCharacter { id: id.clone() }).await,
        Err(AppError::NotFound),
        "restoring what is not in the trash"
    );
}

async fn the_trash_is_emptied_after_its_days(backend: Backend) {
    let app = signed_in(backend).await;
    let old = save_character(&app, "Old").await;
    let recent = save_character(&app, "Recent").await;
    let chat = open_chat(&app, &old).await;
    for id in [&old, &recent] {
        app.call(DeleteCharacter { id: id.clone() }).await.unwrap();
    }
    // One was deleted a day more than the trash keeps, the other a day less.
    let day = 24 * 3_600_000i64;
    let now = app::infra::now_ms();
    for (id, age) in [(&old, TRASH_DAYS + 1), (&recent, TRASH_DAYS - 1)] {
        app::with_pool!(&app.db, pool => {
            sqlx::query("UPDATE characters SET deleted_at = $1 WHERE id = $2")
                .bind(now - age * day)
                .bind(id)
                .execute(pool)
                .await
                .unwrap();
        });
    }
    // Past its days, it is no longer listed nor restorable at once.
    let trash = app.call(ListTrash {}).await.unwrap();
    let ids: Vec<&str> = trash.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [recent.as_str()]);
    // Reading the trash wrote nothing; the server's purge (start-up, then hourly) removes it.
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM characters WHERE id = '{old}'")
        )
        .await,
        1
    );
    app::characters::service::purge_expired(&app.db).await;
    // Gone for good, with its chat.
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM characters WHERE id = '{old}'")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM chat_messages WHERE session_id = '{}'",
                chat.session_id
            )
        )
        .await,
        0
    );
    assert_eq!(
        app.call(RestoreCharacter { id: old.clone() }).await,
        Err(AppError::NotFound)
    );
}

async fn the_character_pages_work_without_javascript(backend: Backend) {
    let app = signed_in(backend).await;
    let id = save_character(&app, "Mira").await;
    let page = |path: String| {
        let req = app
            .client
            .get(app.url(&path))
            .header("accept", "text/html,application/xhtml+xml");
        async move { req.send().await.unwrap() }
    };
    let html = page(format!("/characters/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-testid=\"character-sheet\""), "{html}");
    for link in ["chat", "edit"] {
        assert!(
            html.contains(&format!("href=\"/characters/{id}/{link}\"")),
            "{link}"
        );
    }
    assert!(html.contains(DuplicateCharacter::PATH) && html.contains(DeleteCharacter::PATH));
    let edit = page(format!("/characters/{id}/edit")).await;
    assert_eq!(edit.status(), 200);

    // Delete as a plain form post: the browser goes to the dashboard, which offers Undo.
    let form = |path: &str| {
        app.client
            .post(app.url(path))
            .header("accept", "text/html")
            .header("referer", app.url(&format!("/characters/{id}")))
            .form(&[("id", id.as_str())])
            .send()
    };
    let res = form(DeleteCharacter::PATH).await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let to = location(&res);
    assert_eq!(to, format!("/dashboard?deleted={id}"));
    let html = page(to).await.text().await.unwrap();
    assert!(html.contains("data-testid=\"deleted-notice\""));
    assert!(html.contains(RestoreCharacter::PATH));
    assert!(!html.contains(">Mira<"), "not listed any more");
    let html = page("/trash".into()).await.text().await.unwrap();
    assert!(html.contains("Restore Mira"), "{html}");

    // Undo: back on its page.
    let res = form(RestoreCharacter::PATH).await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(location(&res), format!("/characters/{id}"));
    assert_eq!(page(format!("/characters/{id}")).await.status(), 200);
    // A deleted character's page is a 404.
    app.call(DeleteCharacter { id: id.clone() }).await.unwrap();
    assert_eq!(page(format!("/characters/{id}")).await.status(), 404);
}

/// Each section, written again by the offline writer: that section changes, every other field
/// (the user's edits included) stays exactly as sent, and the result still saves.
async fn one_section_is_written_again_and_the_rest_kept(backend: Backend) {
    let app = signed_in(backend).await;
    let id = save_character(&app, "Mira").await;
    let mut draft = get(&app, &id).await.unwrap().draft;
    draft.opening_line = "My own words, kept.".into();
    for section in Section::ALL {
        let out = app
            .call(RegenerateSection {
                draft: draft.clone(),
                section,
                variation: 7,
            })
            .await
            .unwrap_or_else(|e| panic!("{section:?}: {e:?}"));
        assert!(out.offline);
        let as_json = |d: &app::domain::CharacterDraft| serde_json::to_value(d).unwrap();
        let (before, after) = (as_json(&draft), as_json(&out.draft));
        for (key, value) in before.as_object().unwrap() {
            if key == section.key() {
                assert_ne!(&after[key], value, "{key} was written again");
            } else {
                assert_eq!(&after[key], value, "{key} kept while writing {section:?}");
            }
        }
        app.call(UpdateCharacter {
            id: id.clone(),
            draft: out.draft.clone(),
        })
        .await
        .unwrap();
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'section'"
        )
        .await,
        5
    );
    // A seed that does not parse is refused field by field, before any model call.
    let mut bad = draft.clone();
    bad.name = String::new();
    assert!(matches!(
        app.call(RegenerateSection {
            draft: bad,
            section: Section::Backstory,
            variation: 0,
        })
        .await,
        Err(AppError::Invalid(_))
    ));
}

/// Through Gemini (the mock): the request carries the other fields as context and only the
/// section's schema; an answer at the schema's limits is taken; an invalid one gets one repair.
async fn a_section_from_a_model_is_checked_like_the_whole(backend: Backend) {
    let mock = MockLlm::start().await;
    let base = mock.base_url();
    let app = spawn_app_with(
        backend,
        &[
            ("LLM_PROVIDER", "gemini"),
            ("GEMINI_API_KEY", "test-key"),
            ("GEMINI_BASE_URL", base.as_str()),
        ],
        |_| {},
    )
    .await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let mut draft = get(&app, &id).await.unwrap().draft;
    draft.backstory = "She kept the lighthouse alone for nine winters.".into();

    mock.push(Reply::FillSchema { over: 1.0 });
    let out = app
        .call(RegenerateSection {
            draft: draft.clone(),
            section: Section::Endings,
            variation: 0,
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = out.draft.endings.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["happy", "tragic", "ambiguous"]);
    assert_eq!(out.draft.backstory, draft.backstory);
    let sent = mock.requests().last().unwrap().body.clone();
    assert_eq!(
        sent["generationConfig"]["responseJsonSchema"],
        Section::Endings.schema()
    );
    let prompt = sent["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        prompt.contains("She kept the lighthouse alone for nine winters."),
        "{prompt}"
    );

    // Two endings of one kind: refused, sent back once with the reason, then taken.
    mock.push(Reply::Json {
        value: serde_json::json!({"endings": [
            {"kind": "happy", "text": "One."},
            {"kind": "happy", "text": "Two."},
            {"kind": "tragic", "text": "Three."}
        ]}),
    });
    mock.push(Reply::FillSchema { over: 1.0 });
    let before = mock.requests().len();
    app.call(RegenerateSection {
        draft: draft.clone(),
        section: Section::Endings,
        variation: 1,
    })
    .await
    .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), before + 2);
    let repair = reqs.last().unwrap().body["contents"][2]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(repair.contains("different kind"), "{repair}");
}
