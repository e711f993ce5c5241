//! The user's own labels on characters, on SQLite and Postgres: tags and a favourite mark set on a
//! character's page (server functions), shown and filtered on the dashboard, kept by a duplicate;
//! and the dashboard's selection form — a plain form post, so without JavaScript too — tagging,
//! untagging, (un)marking, exporting, deleting and undoing for the ticked characters, never anyone
//! else's.

use crate::common::*;
use app::characters::{
    CharacterFilter, DuplicateCharacter, GetCharacter, SearchCharacters, SetFavourite, SetTags,
};
use app::error::AppError;

on_both_backends!(
    tags_and_favourites_label_and_filter_characters,
    the_selection_form_acts_on_the_ticked_characters_only,
);

async fn names(app: &TestApp, filter: CharacterFilter) -> Vec<String> {
    let page = app
        .call(SearchCharacters {
            filter,
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    let mut names: Vec<String> = page.characters.into_iter().map(|c| c.name).collect();
    names.sort();
    names
}

fn by_tag(tag: &str) -> CharacterFilter {
    CharacterFilter {
        tag: tag.into(),
        ..Default::default()
    }
}

async fn tags_and_favourites_label_and_filter_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let ash = save_character(&app, "Ash").await;
    let bryn = save_character(&app, "Bryn").await;
    let cade = save_character(&app, "Cade").await;

    // Tags are typed as a list: trimmed, blanks skipped, repeats (any case) kept once.
    let kept = app
        .call(SetTags {
            id: ash.clone(),
            tags: " Fantasy, sea,, fantasy ".into(),
        })
        .await
        .unwrap();
    assert_eq!(kept, ["Fantasy", "sea"]);
    let before = app.call(GetCharacter { id: bryn.clone() }).await.unwrap();
    app.call(SetTags {
        id: bryn.clone(),
        tags: "fantasy".into(),
    })
    .await
    .unwrap();
    app.call(SetFavourite {
        id: bryn.clone(),
        favourite: true,
    })
    .await
    .unwrap();
    let after = app.call(GetCharacter { id: bryn.clone() }).await.unwrap();
    assert!(after.favourite);
    assert_eq!(after.tags, ["fantasy"]);
    assert_eq!(
        after.updated_at, before.updated_at,
        "labels are not an edit of the character"
    );

    assert_eq!(names(&app, by_tag("FANTASY")).await, ["Ash", "Bryn"]);
    // A page at a time: newest first through the tag's index, by name as one more condition.
    for (sort, expected) in [
        (app::characters::CharacterSort::Created, ["Bryn", "Ash"]),
        (app::characters::CharacterSort::Name, ["Ash", "Bryn"]),
    ] {
        let filter = CharacterFilter {
            sort,
            ..by_tag("fantasy")
        };
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = app
                .call(SearchCharacters {
                    filter: filter.clone(),
                    after: after.clone(),
                    limit: Some(1),
                })
                .await
                .unwrap();
            seen.extend(page.characters.into_iter().map(|c| c.name));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{sort:?}");
    }
    // Any script's case, not only ASCII's (SQLite's lower() knows only ASCII).
    app.call(SetTags {
        id: cade.clone(),
        tags: "Été, ФЭНТЕЗИ".into(),
    })
    .await
    .unwrap();
    assert_eq!(names(&app, by_tag("été")).await, ["Cade"]);
    assert_eq!(names(&app, by_tag("фэнтези")).await, ["Cade"]);
    assert_eq!(names(&app, by_tag("sea")).await, ["Ash"]);
    assert!(
        names(&app, by_tag("fan")).await.is_empty(),
        "whole tags only"
    );
    let favourites = CharacterFilter {
        favourites: true,
        ..Default::default()
    };
    assert_eq!(names(&app, favourites.clone()).await, ["Bryn"]);
    let both = CharacterFilter {
        tag: "sea".into(),
        favourites: true,
        ..Default::default()
    };
    assert!(names(&app, both).await.is_empty());
    // The dashboard's cards carry them.
    let page = app
        .call(SearchCharacters {
            filter: favourites,
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(page.characters[0].tags, ["fantasy"]);
    assert!(page.characters[0].favourite);

    // Refused before anything is written, with a sentence.
    let thirteen: Vec<String> = (0..13).map(|i| format!("t{i}")).collect();
    for (tags, says) in [
        (thirteen.join(","), "at most 12 tags"),
        ("x".repeat(31), "at most 30 characters"),
        ("bad\u{7}tag".to_string(), "control characters"),
    ] {
        match app
            .call(SetTags {
                id: ash.clone(),
                tags,
            })
            .await
        {
            Err(AppError::BadRequest(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        app.call(GetCharacter { id: ash.clone() })
            .await
            .unwrap()
            .tags,
        ["Fantasy", "sea"]
    );
    // Clearing them.
    assert!(app
        .call(SetTags {
            id: ash.clone(),
            tags: " ".into(),
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(names(&app, by_tag("sea")).await, Vec::<String>::new());

    // A copy keeps the tags, not the favourite mark.
    let copy = app
        .call(DuplicateCharacter { id: bryn.clone() })
        .await
        .unwrap();
    let copy = app.call(GetCharacter { id: copy }).await.unwrap();
    assert_eq!(copy.tags, ["fantasy"]);
    assert!(!copy.favourite);

    // The dashboard's HTML, without script: the filter form, the star, the tag links.
    let html = app.html("/dashboard?tag=fantasy&fav=1").await;
    assert!(html.contains(r#"id="search-fav""#), "{html}");
    assert!(html.contains("Select Bryn"), "{html}");
    assert!(!html.contains("Select Ash"), "{html}");
    assert!(html.contains(r#"aria-label="Favourite""#), "{html}");
    assert!(
        html.contains(r#"href="/dashboard?tag=fantasy&amp;fav=1""#),
        "{html}"
    );
    // The character's page: the tag form holds the tags, the star says it is pressed.
    let html = app.html(&format!("/characters/{bryn}")).await;
    assert!(html.contains(r#"aria-pressed="true""#), "{html}");
    assert!(html.contains(r#"value="fantasy""#), "{html}");
}

/// Posts the selection form as a browser without JavaScript would.
async fn select(app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    app.client
        .post(app.url("/characters/selection"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), 303, "a redirect back to the dashboard");
    res.headers()["location"].to_str().unwrap().to_string()
}

async fn the_selection_form_acts_on_the_ticked_characters_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let ash = save_character(&app, "Ash").await;
    let bryn = save_character(&app, "Bryn").await;
    let cade = save_character(&app, "Cade").await;
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    let theirs = app::characters::store::insert(
        &app.db,
        &app::auth::UserId(other.id),
        &full_draft("Theirs").parse_spec().unwrap(),
    )
    .await
    .unwrap();
    let back = "/dashboard?q=a&sort=name&deleted=zzz";

    // Tag two of mine and someone else's: mine are tagged, theirs is not even looked at as mine.
    let res = select(
        &app,
        &[
            ("action", "tag"),
            ("tag", "Night, sea"),
            ("ids", &ash),
            ("ids", &bryn),
            ("ids", &theirs),
            ("back", back),
        ],
    )
    .await;
    assert_eq!(
        location(&res),
        "/dashboard?q=a&sort=name&done=tagged&n=2",
        "back to the same search, without the old notice"
    );
    let tags = |id: String| {
        let app = &app;
        async move { app.call(GetCharacter { id }).await.unwrap().tags }
    };
    assert_eq!(tags(ash.clone()).await, ["Night", "sea"]);
    assert_eq!(tags(bryn.clone()).await, ["Night", "sea"]);
    assert!(tags(cade.clone()).await.is_empty());
    let untouched = "SELECT COUNT(*) FROM characters WHERE name = 'Theirs' AND favourite = 0 \
                     AND tags = '[]' AND deleted_at IS NULL";
    assert_eq!(count(&app, untouched).await, 1);
    // The page says so, in a sentence.
    let html = app.html("/dashboard?done=tagged&n=2").await;
    assert!(html.contains("Tagged 2 characters."), "{html}");

    // Untag one tag; mark and unmark favourites.
    let res = select(
        &app,
        &[("action", "untag"), ("tag", "NIGHT"), ("ids", &ash)],
    )
    .await;
    assert_eq!(location(&res), "/dashboard?done=untagged&n=1");
    assert_eq!(tags(ash.clone()).await, ["sea"]);
    for (action, n) in [("favourite", "3"), ("unfavourite", "1")] {
        let ids: &[&str] = if action == "favourite" {
            &[&ash, &bryn, &cade, &theirs]
        } else {
            &[&cade]
        };
        let mut fields = vec![("action", action)];
        fields.extend(ids.iter().map(|id| ("ids", *id)));
        let res = select(&app, &fields).await;
        assert_eq!(location(&res), format!("/dashboard?done={action}d&n={n}"));
    }
    let favs = app
        .call(SearchCharacters {
            filter: CharacterFilter {
                favourites: true,
                ..Default::default()
            },
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(favs.characters.len(), 2);
    assert_eq!(count(&app, untouched).await, 1);

    // A character with as many tags as it may have is left as it was, and the page says so.
    let twelve: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    app.call(SetTags {
        id: cade.clone(),
        tags: twelve.join(","),
    })
    .await
    .unwrap();
    let res = select(
        &app,
        &[
            ("action", "tag"),
            ("tag", "more"),
            ("ids", &cade),
            ("ids", &ash),
        ],
    )
    .await;
    assert_eq!(location(&res), "/dashboard?done=full&n=1");
    assert_eq!(tags(cade.clone()).await.len(), 12);
    assert_eq!(tags(ash.clone()).await, ["sea", "more"]);

    // Export the selection: a zip with one card each.
    let res = select(&app, &[("action", "export"), ("ids", &ash), ("ids", &bryn)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap();
    let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(zip.len(), 2);
    // Someone else's is refused whole, nothing exported.
    let res = select(
        &app,
        &[("action", "export"), ("ids", &ash), ("ids", &theirs)],
    )
    .await;
    assert_eq!(location(&res), "/dashboard?problem=gone");

    // Delete two; the dashboard offers Undo for exactly those, which brings both back.
    let res = select(&app, &[("action", "delete"), ("ids", &ash), ("ids", &bryn)]).await;
    let to = location(&res);
    assert_eq!(to, format!("/dashboard?deleted={ash}%2C{bryn}"));
    assert_eq!(names(&app, CharacterFilter::default()).await, ["Cade"]);
    let html = app.html(&to).await;
    assert!(html.contains("Moved 2 characters to the trash."), "{html}");
    assert!(html.contains(r#"name="action" value="restore""#), "{html}");
    let res = select(
        &app,
        &[("action", "restore"), ("ids", &ash), ("ids", &bryn)],
    )
    .await;
    assert_eq!(location(&res), "/dashboard?done=restored&n=2");
    assert_eq!(
        names(&app, CharacterFilter::default()).await,
        ["Ash", "Bryn", "Cade"]
    );

    // Nothing ticked, too many, no tags typed, an unknown action: a sentence, nothing done.
    let many: Vec<String> = (0..101).map(|i| format!("id{i}")).collect();
    let mut too_many = vec![("action", "delete")];
    too_many.extend(many.iter().map(|id| ("ids", id.as_str())));
    for (fields, code) in [
        (vec![("action", "delete")], "none"),
        (too_many, "too-many"),
        (
            vec![("action", "tag"), ("tag", " , "), ("ids", &ash)],
            "tag",
        ),
        (vec![("action", "burn"), ("ids", &ash)], "action"),
    ] {
        let res = select(&app, &fields).await;
        assert_eq!(location(&res), format!("/dashboard?problem={code}"));
    }
    let html = app.html("/dashboard?problem=none").await;
    assert!(
        html.contains("Tick at least one character first."),
        "{html}"
    );
    assert_eq!(names(&app, CharacterFilter::default()).await.len(), 3);

    // `back` leads nowhere but the dashboard.
    for back in ["https://evil.example/x", "//evil.example", "/signin?x=1"] {
        let res = select(
            &app,
            &[("action", "favourite"), ("ids", &ash), ("back", back)],
        )
        .await;
        assert_eq!(location(&res), "/dashboard?done=favourited&n=1");
    }

    // Signed out: refused. From another site: refused before anything is read.
    let res = new_client()
        .post(app.url("/characters/selection"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("action=delete&ids={cade}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .post(app.url("/characters/selection"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://evil.example")
        .body(format!("action=delete&ids={cade}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(names(&app, CharacterFilter::default()).await.len(), 3);
}
