//! The dashboard at scale, on SQLite (FTS5) and Postgres (tsvector and GIN): search over a
//! character's name, traits, backstory and world (every word, each as a prefix, whatever the
//! user types), filters by trait and language, three orders each paged by keyset; the index
//! follows edits, the trash and deletes; another user's characters never appear; the same through
//! the dashboard's HTML (no script) and the REST API.

use crate::common::*;
use app::auth::UserId;
use app::characters::{CharacterFilter, CharacterSort, SearchCharacters};
use app::error::AppError;
use serde_json::Value;

on_both_backends!(
    search_filters_and_orders_page_through_the_right_characters,
    the_index_follows_edits_the_trash_and_deletes,
);

/// Saves a character of `owner` with these words, straight through the store.
async fn seed(
    app: &TestApp,
    owner: &UserId,
    name: &str,
    traits: &[&str],
    language: &str,
    backstory: &str,
    world: &str,
) -> String {
    let mut d = full_draft(name);
    d.traits = traits.iter().map(|t| t.to_string()).collect();
    d.language = language.into();
    d.backstory = backstory.into();
    d.story_context = world.into();
    app::characters::store::insert(&app.db, owner, &d.parse_spec().unwrap())
        .await
        .unwrap()
}

async fn me(app: &TestApp) -> UserId {
    UserId(
        app.call(app::auth::GetCurrentUser {})
            .await
            .unwrap()
            .unwrap()
            .id,
    )
}

async fn names(app: &TestApp, filter: CharacterFilter) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = app
            .call(SearchCharacters {
                filter: filter.clone(),
                after: after.clone(),
                limit: Some(2),
            })
            .await
            .unwrap();
        out.extend(page.characters.into_iter().map(|c| c.name));
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

fn q(text: &str) -> CharacterFilter {
    CharacterFilter {
        q: text.into(),
        ..Default::default()
    }
}

async fn search_filters_and_orders_page_through_the_right_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let owner = me(&app).await;
    seed(
        &app,
        &owner,
        "Mira Holt",
        &["brave", "Curious"],
        "English",
        "She keeps the lighthouse on the northern cape.",
        "A storm-bound harbour town.",
    )
    .await;
    seed(
        &app,
        &owner,
        "Kai Serrano",
        &["calm"],
        "Spanish",
        "A cartographer who maps forgotten islands.",
        "The archipelago of Lumen.",
    )
    .await;
    seed(
        &app,
        &owner,
        "Ansel Brandt",
        &["curious", "stubborn"],
        "German",
        "He repairs clocks in a mountain village.",
        "A village where time runs slow.",
    )
    .await;
    seed(
        &app,
        &owner,
        "Zoë Lighthouse",
        &["wry"],
        "English",
        "A retired sailor.",
        "The northern sea.",
    )
    .await;
    seed(
        &app,
        &owner,
        "Bram Ode",
        &["gentle"],
        "Dutch",
        "A baker.",
        "A canal city.",
    )
    .await;
    // Someone else's character with the same words never appears.
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    seed(
        &app,
        &UserId(other.id),
        "Mira Elsewhere",
        &["curious"],
        "English",
        "Another lighthouse keeper.",
        "The northern cape.",
    )
    .await;

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // A word in the backstory, a prefix, a name, a trait word, a world word; every word must match.
    assert_eq!(
        sorted(names(&app, q("lighthouse")).await),
        ["Mira Holt", "Zoë Lighthouse"]
    );
    assert_eq!(
        sorted(names(&app, q("light")).await),
        ["Mira Holt", "Zoë Lighthouse"]
    );
    assert_eq!(names(&app, q("kai")).await, ["Kai Serrano"]);
    assert_eq!(
        sorted(names(&app, q("curious")).await),
        ["Ansel Brandt", "Mira Holt"]
    );
    assert_eq!(names(&app, q("archipelago")).await, ["Kai Serrano"]);
    // "northern" (Zoë's world, Mira's backstory) and "lighthouse" (both): both, newest first.
    assert_eq!(
        names(&app, q("northern lighthouse")).await,
        ["Zoë Lighthouse", "Mira Holt"]
    );
    assert_eq!(names(&app, q("northern cape")).await, ["Mira Holt"]);
    assert!(names(&app, q("submarine")).await.is_empty());
    // What a user types is never query syntax: quotes, operators, stars, brackets.
    for odd in [
        "\"lighthouse",
        "lighthouse OR baker",
        "light*",
        "(cape",
        "NEAR(a b)",
        "cape:",
        "-cape",
        "'; DROP TABLE characters; --",
    ] {
        let found = app
            .call(SearchCharacters {
                filter: q(odd),
                after: None,
                limit: None,
            })
            .await;
        assert!(found.is_ok(), "{odd}: {found:?}");
    }
    assert_eq!(
        names(&app, q("lighthouse OR baker")).await.len(),
        0,
        "OR is a word here, and no one has it"
    );
    // Punctuation only: no search at all.
    assert_eq!(names(&app, q("!!!")).await.len(), 5);

    // Filters, alone and with a search; a trait in any case.
    let trait_ = |t: &str| CharacterFilter {
        trait_name: t.into(),
        ..Default::default()
    };
    assert_eq!(
        sorted(names(&app, trait_("CURIOUS")).await),
        ["Ansel Brandt", "Mira Holt"]
    );
    let english = CharacterFilter {
        language: "English".into(),
        ..Default::default()
    };
    assert_eq!(
        sorted(names(&app, english).await),
        ["Mira Holt", "Zoë Lighthouse"]
    );
    let both = CharacterFilter {
        q: "village".into(),
        trait_name: "stubborn".into(),
        ..Default::default()
    };
    assert_eq!(names(&app, both).await, ["Ansel Brandt"]);

    // Orders, paged two at a time: by name; newest first; most recently chatted first.
    let by = |sort| CharacterFilter {
        sort,
        ..Default::default()
    };
    assert_eq!(
        names(&app, by(CharacterSort::Name)).await,
        [
            "Ansel Brandt",
            "Bram Ode",
            "Kai Serrano",
            "Mira Holt",
            "Zoë Lighthouse"
        ]
    );
    assert_eq!(
        names(&app, by(CharacterSort::Created)).await,
        [
            "Bram Ode",
            "Zoë Lighthouse",
            "Ansel Brandt",
            "Kai Serrano",
            "Mira Holt"
        ]
    );
    let page = app
        .call(SearchCharacters {
            filter: q("kai"),
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    let kai = page.characters[0].id.clone();
    let chat = open_chat(&app, &kai).await;
    send_message(&app, &chat.session_id, "Where are the islands?").await;
    let chatted = names(&app, by(CharacterSort::Chatted)).await;
    assert_eq!(chatted[0], "Kai Serrano", "{chatted:?}");
    assert_eq!(chatted.len(), 5);

    // Too long: refused before any query. Someone else's cursor: not found.
    let long = q(&"a".repeat(CharacterFilter::MAX_QUERY + 1));
    assert!(matches!(
        app.refusal(SearchCharacters {
            filter: long,
            after: None,
            limit: None
        })
        .await,
        AppError::BadRequest(_)
    ));

    // The dashboard, without JavaScript: the form keeps the search, and "More" carries it.
    let html = app.html("/dashboard?q=curious&sort=name").await;
    assert!(html.contains("Ansel Brandt") && html.contains("Mira Holt"));
    assert!(!html.contains("Kai Serrano"));
    assert!(
        html.contains("value=\"curious\""),
        "the search is kept in the form"
    );
    let none = app.html("/dashboard?q=submarine").await;
    assert!(none.contains("data-testid=\"no-match\""));
    let many = app.html("/dashboard?trait=curious&sort=name").await;
    assert!(many.contains("Ansel Brandt"));

    // The REST API takes the same search.
    let key = app
        .call(app::keys::CreateApiKey {
            name: "search".into(),
            write: false,
            expires_in_days: 0,
        })
        .await
        .unwrap()
        .secret;
    let get = |path: &str| {
        new_client()
            .get(app.url(path))
            .header("authorization", format!("Bearer {key}"))
            .send()
    };
    let page: Value = get("/api/v1/characters?q=light&sort=name&limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["characters"][0]["name"], "Mira Holt");
    let next = page["next"].as_str().unwrap().to_string();
    let page: Value = get(&format!(
        "/api/v1/characters?q=light&sort=name&limit=1&after={next}"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(page["characters"][0]["name"], "Zoë Lighthouse");
    assert!(page["next"].is_null());
    let page: Value = get("/api/v1/characters?trait=Curious&language=English")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["characters"].as_array().unwrap().len(), 1);
    let res = get("/api/v1/characters?sort=random").await.unwrap();
    assert_eq!(res.status(), 422);
}

async fn the_index_follows_edits_the_trash_and_deletes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let owner = me(&app).await;
    let id = seed(
        &app,
        &owner,
        "Orla",
        &["quiet"],
        "English",
        "She tends bees on a hillside.",
        "A valley of orchards.",
    )
    .await;
    assert_eq!(names(&app, q("bees")).await, ["Orla"]);
    // Edited: the old words are gone, the new ones found.
    let mut view = app
        .call(app::characters::GetCharacter { id: id.clone() })
        .await
        .unwrap();
    view.draft.backstory = "She builds kites by the sea.".into();
    app.call(app::characters::UpdateCharacter {
        id: id.clone(),
        draft: view.draft.clone(),
    })
    .await
    .unwrap();
    assert!(names(&app, q("bees")).await.is_empty());
    assert_eq!(names(&app, q("kites")).await, ["Orla"]);
    // In the trash: not listed; restored: listed again.
    app.call(app::characters::DeleteCharacter { id: id.clone() })
        .await
        .unwrap();
    assert!(names(&app, q("kites")).await.is_empty());
    app.call(app::characters::RestoreCharacter { id: id.clone() })
        .await
        .unwrap();
    assert_eq!(names(&app, q("kites")).await, ["Orla"]);
    // Deleted for good: gone from the index too.
    app::with_pool!(&app.db, pool => {
        sqlx::query("DELETE FROM characters WHERE id = $1").bind(&id).execute(pool).await.unwrap();
    });
    assert!(names(&app, q("kites")).await.is_empty());
    if backend == Backend::Sqlite {
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) FROM characters_fts WHERE characters_fts MATCH 'kites'"
            )
            .await,
            0
        );
    }
}
