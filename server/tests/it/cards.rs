//! Character Card import through the server: a card file (JSON or PNG) becomes a wizard draft,
//! the draft completed and saved keeps the whole card with the character; bad files are refused
//! with a sentence and the right status; without JavaScript the form post lands in the wizard (or
//! back on the import page with the error). On SQLite and Postgres.

use crate::common::*;
use app::characters::{CardImport, GetCardImport, ImportCard, RegenerateSection, SaveCharacter};
use app::domain::Section;
use app::error::AppError;
use base64::Engine;
use leptos::server_fn::ServerFn;
use serde_json::{json, Value};

on_both_backends!(
    a_card_becomes_a_draft_and_its_character_keeps_the_card,
    a_png_card_is_read_from_its_text_chunk,
    a_charx_card_is_read_from_its_card_json,
    bad_files_are_refused_with_a_sentence,
    the_import_works_without_javascript,
    imports_are_their_owners_only,
    a_character_exports_as_a_card_and_comes_back_the_same,
    every_character_exports_in_one_zip,
);

/// What the wizard does with an imported draft: the age typed, then the missing sections written
/// with the card's texts as context (kept as they are), then saved with the import. Returns the
/// character's id and the draft saved.
async fn complete_and_save(
    app: &TestApp,
    import: &CardImport,
) -> (String, app::domain::CharacterDraft) {
    let mut draft = import.draft.clone();
    draft.age = "52".into();
    for section in [Section::StartOptions, Section::Endings] {
        draft = app
            .call(RegenerateSection {
                draft,
                section,
                variation: 1,
            })
            .await
            .unwrap()
            .draft;
    }
    let id = app
        .call(SaveCharacter {
            draft: draft.clone(),
            import: Some(import.id.clone()),
        })
        .await
        .unwrap();
    (id, draft)
}

fn v2_card(name: &str) -> Value {
    json!({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": name,
            "description": "{{char}} keeps the lighthouse on the northern cape.",
            "personality": "quiet, watchful, stubborn",
            "scenario": "A storm is coming in over the cape.",
            "first_mes": "*looks up from the lamp* You came in this weather, {{user}}?",
            "mes_example": "<START>\n{{char}}: The light must not go out.",
            "alternate_greetings": ["Another night, another ship.", "You again."],
            "tags": [],
            "creator": "someone",
            "character_version": "1.2",
            "extensions": {"depth_prompt": {"depth": 4, "prompt": "Stay in character."}, "x-unknown": [1, 2, 3]},
            "character_book": {"entries": [{"keys": ["lamp"], "content": "The lamp is old.", "enabled": true, "insertion_order": 0}]},
            "some_future_field": {"kept": true}
        }
    })
}

async fn fetch(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.unwrap()
}

const JSON: &str = "application/json";

async fn upload(app: &TestApp, name: &str, bytes: Vec<u8>) -> reqwest::Response {
    app.upload_request(&app.client, JSON, name, bytes)
        .send()
        .await
        .unwrap()
}

async fn a_card_becomes_a_draft_and_its_character_keeps_the_card(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let card = v2_card("Ilse");
    let res = upload(&app, "ilse.json", serde_json::to_vec(&card).unwrap()).await;
    assert_eq!(res.status(), 200);
    let import: CardImport = result(res).await.unwrap();
    assert_eq!(import.format, "Character Card V2");
    let d = &import.draft;
    assert_eq!(d.name, "Ilse");
    assert_eq!(
        d.backstory,
        "Ilse keeps the lighthouse on the northern cape."
    );
    assert_eq!(d.story_context, "A storm is coming in over the cape.");
    assert_eq!(
        d.opening_line,
        "*looks up from the lamp* You came in this weather, you?"
    );
    assert_eq!(d.traits, vec!["quiet", "watchful", "stubborn"]);
    assert_eq!(
        (d.language.as_str(), d.gender.as_str()),
        ("English", "unspecified")
    );
    assert!(d.age.is_empty() && d.start_options.is_empty());
    assert!(import.notes.iter().any(|n| n.contains("start options")));
    // The wizard opens the same import.
    let again = app
        .call(GetCardImport {
            id: import.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(again, import);

    let (id, draft) = complete_and_save(&app, &import).await;
    assert_eq!(draft.backstory, import.draft.backstory);
    assert_eq!(draft.start_options.len(), 3);

    // The card as it came, every field kept: extensions, the lorebook, unknown fields.
    let owner = app::auth::UserId(one_string(&app, "SELECT id FROM users").await);
    let kept = app::characters::cards::card_of(&app.db, &owner, &id)
        .await
        .unwrap()
        .expect("the card is kept");
    let kept: Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept, card);
    let column =
        |name: &str| format!("SELECT CAST({name} AS TEXT) FROM characters WHERE id = '{id}'");
    let greetings: Value =
        serde_json::from_str(&one_string(&app, &column("alternate_greetings")).await).unwrap();
    assert_eq!(
        greetings,
        json!(["Another night, another ship.", "You again."])
    );
    let extensions: Value =
        serde_json::from_str(&one_string(&app, &column("extensions")).await).unwrap();
    assert_eq!(extensions, card["data"]["extensions"]);
    // In the chat they are the greeting's other versions, shown on request.
    let chat = open_chat(&app, &id).await;
    let first = &chat.messages[0];
    assert_eq!((first.version, first.versions), (1, 3));
    for (version, text) in [(2, "Another night, another ship."), (3, "You again.")] {
        let page = app
            .call(app::chat::ShowVersion {
                session_id: chat.session_id.clone(),
                message_id: first.id.clone(),
                version,
            })
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].content, text);
        assert_eq!(page.messages[0].version, version);
    }
    // The import was used up.
    assert_eq!(
        app.call(GetCardImport { id: import.id }).await,
        Err(AppError::NotFound)
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM card_imports").await, 0);
}

async fn one_string(app: &TestApp, sql: &str) -> String {
    app::with_pool!(&app.db, pool => {
        sqlx::query_scalar::<_, String>(sql).fetch_one(pool).await.unwrap()
    })
}

/// A 1×1 PNG with `chunks` as tEXt chunks after the image data, as SillyTavern writes them.
fn png_with(chunks: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, 1, 1);
        enc.set_color(png::ColorType::Rgba);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[40, 80, 160, 255]).unwrap();
        for (k, v) in chunks {
            w.write_text_chunk(&png::text_metadata::TEXtChunk::new(*k, v.as_str()))
                .unwrap();
        }
    }
    out
}

async fn a_png_card_is_read_from_its_text_chunk(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(v2_card("Orrin").to_string());
    let res = upload(&app, "orrin.png", png_with(&[("chara", b64)])).await;
    let import: CardImport = result(res).await.unwrap();
    assert_eq!(
        (import.format.as_str(), import.draft.name.as_str()),
        ("Character Card V2", "Orrin")
    );
}

async fn a_charx_card_is_read_from_its_card_json(backend: Backend) {
    use std::io::Write;
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let mut v3 = v2_card("Zed");
    v3["spec"] = "chara_card_v3".into();
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("card.json", opts).unwrap();
        zip.write_all(v3.to_string().as_bytes()).unwrap();
        zip.start_file("assets/icon/main.png", opts).unwrap();
        zip.write_all(&png_with(&[])).unwrap();
        zip.finish().unwrap();
    }
    let res = upload(&app, "zed.charx", out.into_inner()).await;
    let import: CardImport = result(res).await.unwrap();
    assert_eq!(
        (import.format.as_str(), import.draft.name.as_str()),
        ("Character Card V3", "Zed")
    );
}

async fn bad_files_are_refused_with_a_sentence(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    for (name, bytes, sentence) in [
        (
            "x.json",
            b"{not json".to_vec(),
            "The card's data is not valid JSON.",
        ),
        (
            "x.txt",
            b"hello".to_vec(),
            "The card's data is not valid JSON.",
        ),
        (
            "x.json",
            br#"{"a":1}"#.to_vec(),
            "This is not a Character Card",
        ),
        (
            "x.png",
            png_with(&[("Comment", "hi".into())]),
            "The PNG has no character card in it",
        ),
        ("x.json", Vec::new(), "The file is empty."),
    ] {
        let res = upload(&app, name, bytes).await;
        assert_eq!(res.status(), 422, "{name}");
        let err = result::<CardImport>(res).await.unwrap_err();
        assert!(
            matches!(&err, AppError::BadRequest(s) if s.starts_with(sentence)),
            "{err:?}"
        );
    }
    // One byte over the card limit (within the request's, so it is read): refused, kept nowhere.
    let big = vec![b' '; app::domain::card::MAX_CARD_BYTES + 1];
    let res = upload(&app, "big.json", big).await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        result::<CardImport>(res).await.unwrap_err(),
        AppError::TooLarge("The file is larger than 8 MB.".into())
    );
    // A form without a file.
    let res = app
        .client
        .post(app.url(ImportCard::PATH))
        .header("accept", "application/json")
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    // Not multipart, or multipart that is garbage: a 4xx, never a fault.
    for (content_type, body) in [
        ("application/json", b"{}".to_vec()),
        ("multipart/form-data", b"x".to_vec()),
        (
            "multipart/form-data; boundary=abc",
            b"--abc\r\nnonsense".to_vec(),
        ),
        ("multipart/form-data; boundary=abc", vec![0xff; 4096]),
    ] {
        let res = app
            .client
            .post(app.url(ImportCard::PATH))
            .header("accept", "application/json")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_client_error(),
            "{content_type}: {}",
            res.status()
        );
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM card_imports").await, 0);
}

async fn the_import_works_without_javascript(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let html = app.html("/characters/import").await;
    assert!(html.contains(r#"enctype="multipart/form-data""#), "{html}");
    assert!(html.contains(ImportCard::PATH));
    let post = |bytes: Vec<u8>| {
        app.upload_request(&app.client, "text/html", "card.json", bytes)
            .header("referer", app.url("/characters/import"))
            .send()
    };
    let res = post(serde_json::to_vec(&v2_card("Vela")).unwrap())
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let to = location(&res);
    assert!(to.starts_with("/characters/new?import="), "{to}");
    let html = app.html(&to).await;
    assert!(html.contains("data-testid=\"import-notice\""), "{html}");
    assert!(html.contains("Imported from a Character Card V2 file."));
    assert!(html.contains("Vela"), "the wizard has the card's draft");

    // A bad file: back to the import page, which says why.
    let res = post(b"{nope".to_vec()).await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let back = location(&res);
    assert!(
        back.contains("/characters/import?") && back.contains("__err="),
        "{back}"
    );
    let back = back.trim_start_matches(&app.base).to_string();
    let html = app.html(&back).await;
    assert!(html.contains("data-testid=\"import-error\""), "{html}");
    assert!(
        html.contains("The card&#x27;s data is not valid JSON.")
            || html.contains("The card's data is not valid JSON."),
        "{html}"
    );
}

async fn imports_are_their_owners_only(backend: Backend) {
    let app = spawn_app(backend).await;
    // Anonymous: refused before the file is read.
    let res = app
        .upload_request(
            &new_client(),
            JSON,
            "a.json",
            serde_json::to_vec(&v2_card("A")).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Someone else's import: not found, and saving with it keeps no card.
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    let card = app::domain::card::parse_json(v2_card("Theirs").to_string().as_bytes()).unwrap();
    let theirs = app::characters::cards::insert(&app.db, &app::auth::UserId(other.id), &card, None)
        .await
        .unwrap();
    app.sign_in_local().await;
    assert_eq!(
        app.call(GetCardImport { id: theirs.clone() }).await,
        Err(AppError::NotFound)
    );
    let id = app
        .call(SaveCharacter {
            draft: full_draft("Mine"),
            import: Some(theirs.clone()),
        })
        .await
        .unwrap();
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM characters WHERE id = '{id}' AND card IS NULL")
        )
        .await,
        1
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM card_imports").await, 1);

    // A user keeps at most 20 pending imports: the oldest go.
    for i in 0..22 {
        let res = upload(
            &app,
            "c.json",
            serde_json::to_vec(&v2_card(&format!("C{i}"))).unwrap(),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM card_imports").await, 21);
}

async fn a_character_exports_as_a_card_and_comes_back_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let card = v2_card("Ilse");
    let res = upload(&app, "ilse.json", serde_json::to_vec(&card).unwrap()).await;
    let import: CardImport = result(res).await.unwrap();
    let (id, _) = complete_and_save(&app, &import).await;
    let view = app
        .call(app::characters::GetCharacter { id: id.clone() })
        .await
        .unwrap();
    let saved = view.draft;
    // The card's lorebook is listed with the character, and on its page.
    assert_eq!(view.lorebook.len(), 1);
    assert_eq!(view.lorebook[0].keys, vec!["lamp"]);
    let html = app.html(&format!("/characters/{id}")).await;
    assert!(html.contains("data-testid=\"lorebook\"") && html.contains("The lamp is old."));

    // The PNG: a picture carrying V3 (read first) and a V2 backfill, named after the character.
    let res = fetch(&app.client, app.url(&format!("/characters/{id}/card.png"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"Ilse.png\""
    );
    let png = res.bytes().await.unwrap().to_vec();
    let read = app::domain::card::read_file(&png).unwrap();
    assert_eq!(read.spec, app::domain::card::CardSpec::V3);
    // What PersonaFlux did not map came through: extensions, the lorebook, unknown fields.
    let data = &read.raw["data"];
    assert_eq!(
        data["extensions"]["depth_prompt"],
        card["data"]["extensions"]["depth_prompt"]
    );
    assert_eq!(data["character_book"], card["data"]["character_book"]);
    assert_eq!(data["some_future_field"], card["data"]["some_future_field"]);
    assert_eq!(data["mes_example"], card["data"]["mes_example"]);

    // Imported again, the card is the same character, every field.
    let again: CardImport = result(upload(&app, "Ilse.png", png).await).await.unwrap();
    assert_eq!(again.draft, saved);

    // The JSON file is the V3 card.
    let res = fetch(&app.client, app.url(&format!("/characters/{id}/card.json"))).await;
    assert_eq!(res.status(), 200);
    let v3: Value = res.json().await.unwrap();
    assert_eq!(v3["spec"], "chara_card_v3");
    assert_eq!(v3["data"]["extensions"]["personaflux"]["age"], 52);

    // Signed out: 401; someone else's or a missing character: 404.
    let anon = new_client();
    let res = fetch(&anon, app.url(&format!("/characters/{id}/card.png"))).await;
    assert_eq!(res.status(), 401);
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
    for missing in [theirs.as_str(), "nope"] {
        for file in ["card.png", "card.json"] {
            let res = fetch(
                &app.client,
                app.url(&format!("/characters/{missing}/{file}")),
            )
            .await;
            assert_eq!(res.status(), 404, "{missing}/{file}");
        }
    }
}

async fn every_character_exports_in_one_zip(backend: Backend) {
    use std::io::Read;
    let app = spawn_app(backend).await;
    let res = fetch(&new_client(), app.url("/characters/cards.zip")).await;
    assert_eq!(res.status(), 401);
    app.sign_in_local().await;
    // Two with the same name, and one in the trash (not exported).
    let first = save_character(&app, "Mira").await;
    save_character(&app, "Mira").await;
    let gone = save_character(&app, "Orrin").await;
    app.call(app::characters::DeleteCharacter { id: gone })
        .await
        .unwrap();
    let res = fetch(&app.client, app.url("/characters/cards.zip")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = zip.file_names().map(str::to_string).collect();
    names.sort();
    assert_eq!(names, ["Mira-2.png", "Mira.png"]);
    // Each file is a card that imports as its character.
    let mut png = Vec::new();
    zip.by_name("Mira.png")
        .unwrap()
        .read_to_end(&mut png)
        .unwrap();
    let again: CardImport = result(upload(&app, "Mira.png", png).await).await.unwrap();
    let saved = app
        .call(app::characters::GetCharacter { id: first })
        .await
        .unwrap()
        .draft;
    assert_eq!(again.draft, saved);

    // Over the bulk limit: a sentence, before a single card is drawn.
    let owner = app::auth::UserId(one_string(&app, "SELECT id FROM users").await);
    let spec = full_draft("Many").parse_spec().unwrap();
    for _ in 0..app::characters::cards::MAX_BULK_EXPORT {
        app::characters::store::insert(&app.db, &owner, &spec)
            .await
            .unwrap();
    }
    let res = fetch(&app.client, app.url("/characters/cards.zip")).await;
    assert_eq!(res.status(), 422);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("more than 1000 characters"));
}
