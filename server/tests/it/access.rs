//! Access control over every server function. The matrix below must name every registered server
//! function: a new one without an entry fails `every_endpoint_is_in_the_matrix`. Entries
//! that name someone's data are called with the ids of another user's character, chat session and
//! reply. Pages are enumerated from the router itself: every page but the public ones sends an
//! anonymous visitor to sign in.

use crate::common::*;
use app::auth::{GetCurrentUser, GetSignInOptions, LocalSignIn, SignOut};
use app::characters::{
    DeleteCharacter, DuplicateCharacter, GenerateCharacter, GetCardImport, GetCharacter,
    ImportCard, ListCharacterPage, ListCharacters, ListTrash, RegenerateSection, RestoreCharacter,
    SaveCharacter, UpdateCharacter,
};
use app::chat::{EarlierMessages, OpenChat, SendMessage, StopReply};
use app::error::AppError;
use app::twins::{GetTwin, SaveTwin, SuggestShades, SyncSecondmeShades};
use leptos::server_fn::ServerFn;
use serde::Serialize;

/// Who may call a server function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Only the owner of the data the call names; for anyone else that data is "not found".
    Owner,
}

/// Builds a server function's request on a client, with another user's ids where it names data.
type BuildRequest = Box<dyn Fn(&TestApp, &reqwest::Client, &Foreign) -> reqwest::RequestBuilder>;

/// One server function: its path, who may call it, and how to call it (with another user's ids
/// where it names data).
struct Entry {
    path: &'static str,
    access: Access,
    request: BuildRequest,
}

impl Entry {
    fn new<S>(access: Access, args: impl Fn(&Foreign) -> S + 'static) -> Self
    where
        S: ServerFn + Serialize,
        S::Protocol: InputEncoding,
    {
        Self {
            path: S::PATH,
            access,
            request: Box::new(move |app, client, ids| app.request(client, args(ids))),
        }
    }

    /// A server function whose input is not a serialised value (a file upload).
    fn raw(
        path: &'static str,
        access: Access,
        request: impl Fn(&TestApp, &reqwest::Client, &Foreign) -> reqwest::RequestBuilder + 'static,
    ) -> Self {
        Self {
            path,
            access,
            request: Box::new(request),
        }
    }

    async fn call(
        &self,
        app: &TestApp,
        client: &reqwest::Client,
        ids: &Foreign,
    ) -> reqwest::Response {
        (self.request)(app, client, ids)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} failed: {e}", self.path))
    }
}

fn matrix() -> Vec<Entry> {
    use Access::*;
    vec![
        Entry::new(Public, |_| GetCurrentUser {}),
        Entry::new(Public, |_| GetSignInOptions {}),
        Entry::new(Public, |_| LocalSignIn {}),
        Entry::new(Public, |_| SignOut {}),
        // A preference of the browser, not of an account.
        Entry::new(Public, |_| app::theme::SetTheme {
            theme: "dark".into(),
        }),
        Entry::new(SignedIn, |_| ListCharacters {}),
        // The cursor names a character: another user's is not found.
        Entry::new(Owner, |ids| ListCharacterPage {
            after: Some(ids.character.clone()),
            limit: None,
        }),
        Entry::new(Owner, |ids| GetCharacter {
            id: ids.character.clone(),
        }),
        Entry::new(SignedIn, |_| GenerateCharacter {
            draft: draft("A"),
            variation: 0,
        }),
        Entry::new(SignedIn, |_| SaveCharacter {
            draft: draft("A"),
            import: None,
        }),
        Entry::new(SignedIn, |_| RegenerateSection {
            draft: full_draft("A"),
            section: app::domain::Section::Endings,
            variation: 0,
        }),
        // A valid draft, so the refusal is about whose character it is.
        Entry::new(Owner, |ids| UpdateCharacter {
            id: ids.character.clone(),
            draft: full_draft("A"),
        }),
        Entry::new(Owner, |ids| DuplicateCharacter {
            id: ids.character.clone(),
        }),
        Entry::new(Owner, |ids| DeleteCharacter {
            id: ids.character.clone(),
        }),
        Entry::new(Owner, |ids| RestoreCharacter {
            id: ids.character.clone(),
        }),
        Entry::new(Owner, |ids| app::characters::SetFavourite {
            id: ids.character.clone(),
            favourite: true,
        }),
        Entry::new(Owner, |ids| app::characters::SetTags {
            id: ids.character.clone(),
            tags: "mine".into(),
        }),
        Entry::new(SignedIn, |_| ListTrash {}),
        Entry::raw(ImportCard::PATH, SignedIn, |app, client, _| {
            app.upload_request(
                client,
                "application/json",
                "card.json",
                br#"{"name":"A","first_mes":"Hi."}"#.to_vec(),
            )
        }),
        Entry::raw(
            <app::characters::UploadPicture as ServerFn>::PATH,
            Owner,
            |app, client, ids| {
                app.picture_request(
                    client,
                    "application/json",
                    &ids.character,
                    crate::pictures::png(40, 60),
                )
            },
        ),
        Entry::new(Owner, |ids| GetCardImport {
            id: ids.import.clone(),
        }),
        Entry::new(Owner, |ids| OpenChat {
            character_id: ids.character.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::ViewChat {
            session_id: Some(ids.session.clone()),
            character_id: None,
            fresh: false,
        }),
        Entry::new(Owner, |ids| app::chat::StartChat {
            session_id: "0190a8f4-8a3b-7c1d-9e2f-3a4b5c6d7e8f".into(),
            character_id: Some(ids.character.clone()),
        }),
        Entry::new(Owner, |ids| app::chat::ListChats {
            with: Some(ids.character.clone()),
            after: None,
        }),
        Entry::new(Owner, |ids| app::chat::RenameChat {
            session_id: ids.session.clone(),
            title: "Mine".into(),
        }),
        Entry::new(Owner, |ids| app::chat::TrashChat {
            session_id: ids.session.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::RestoreChat {
            session_id: ids.session.clone(),
        }),
        Entry::new(SignedIn, |_| app::chat::TrashedChats {}),
        // A search reads only the caller's own chats: no call names anyone else's.
        Entry::new(SignedIn, |_| app::chat::SearchChats { q: "theirs".into() }),
        Entry::new(Owner, |ids| app::chat::MessagesAt {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::SeenPrompt {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::SeenPromptPage {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::SaveSummary {
            session_id: ids.session.clone(),
            text: "Theirs now.".into(),
        }),
        Entry::raw(
            <app::chat::ImportChat as ServerFn>::PATH,
            Owner,
            |app, client, ids| {
                app.chat_import_request(
                    client,
                    "application/json",
                    &ids.character,
                    b"{\"mes\":\"Hello.\"}\n".to_vec(),
                )
            },
        ),
        Entry::new(Owner, |ids| app::chat::BranchChat {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| EarlierMessages {
            session_id: ids.session.clone(),
            before: 2,
        }),
        Entry::new(Owner, |ids| SendMessage {
            session_id: ids.session.clone(),
            text: "hi".into(),
            after: None,
        }),
        Entry::new(Owner, |ids| StopReply {
            reply_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::RegenerateReply {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::ContinueReply {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::EditMessage {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
            text: "Rewritten".into(),
        }),
        Entry::new(Owner, |ids| app::chat::ShowVersion {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
            version: 1,
        }),
        Entry::new(Owner, |ids| app::chat::DeleteMessage {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        Entry::new(Owner, |ids| app::chat::RestoreMessage {
            session_id: ids.session.clone(),
            message_id: ids.reply.clone(),
        }),
        // A twin is the caller's own: no call names anyone else's.
        Entry::new(SignedIn, |_| GetTwin {}),
        Entry::new(SignedIn, |_| app::twins::TwinSummary {}),
        Entry::new(SignedIn, |_| SaveTwin {
            twin: app::domain::TwinDraft {
                name: "A".into(),
                ..Default::default()
            },
        }),
        Entry::new(SignedIn, |_| SuggestShades {
            questionnaire: app::domain::ShadeQuestionnaire {
                answers: vec!["I read.".into()],
                bio: String::new(),
            },
            variation: 0,
        }),
        Entry::new(SignedIn, |_| SyncSecondmeShades {}),
        Entry::new(SignedIn, |_| app::chat::OpenTwinChat {}),
        Entry::new(SignedIn, |_| app::matches::MatchCandidates {}),
        Entry::new(SignedIn, |_| app::matches::ListMatches {}),
        // Another user's characters cannot be matched, nor their match opened.
        Entry::new(Owner, |ids| app::matches::ScoreMatch {
            a: app::domain::PersonaRef {
                kind: app::domain::PersonaKind::Character,
                id: ids.character.clone(),
            },
            b: app::domain::PersonaRef {
                kind: app::domain::PersonaKind::Character,
                id: "other".into(),
            },
        }),
        Entry::new(Owner, |ids| app::matches::GetMatch {
            id: ids.character.clone(),
        }),
        Entry::new(Owner, |ids| app::matches::StartIcebreaker {
            id: ids.character.clone(),
        }),
        Entry::new(Owner, |ids| app::play::StartRun {
            character_id: ids.character.clone(),
        }),
        Entry::new(Owner, |ids| app::play::GetRun {
            id: ids.run.clone(),
        }),
        // Another user's character has no runs to list: not found.
        Entry::new(Owner, |ids| app::play::ListRuns {
            character_id: Some(ids.character.clone()),
            limit: None,
        }),
        Entry::new(Owner, |ids| app::play::TakeTurn {
            run_id: ids.run.clone(),
            after: String::new(),
            choice: app::domain::PlayChoice {
                option: Some(0),
                action: String::new(),
            },
        }),
        Entry::new(Owner, |ids| app::play::Choose {
            run_id: ids.run.clone(),
            after: String::new(),
            option: Some(0),
            action: None,
        }),
        // Keys are managed only with a browser session; another user's key is not found.
        Entry::new(SignedIn, |_| app::keys::CreateApiKey {
            name: "k".into(),
            write: false,
            expires_in_days: 0,
        }),
        Entry::new(SignedIn, |_| app::keys::ListApiKeys {}),
        Entry::new(Owner, |ids| app::keys::RevokeApiKey {
            id: ids.key.clone(),
        }),
        Entry::new(Owner, |ids| app::play::RerollTurn {
            run_id: ids.run.clone(),
            turn_id: ids.reply.clone(),
        }),
        // Only the caller's own calls are counted (tested in `usage`).
        Entry::new(SignedIn, |_| app::usage::GetUsage { days: 7 }),
        // Someone else's character as the cursor is not found.
        Entry::new(Owner, |ids| app::characters::SearchCharacters {
            filter: Default::default(),
            after: Some(ids.character.clone()),
            limit: None,
        }),
    ]
}

#[test]
fn every_endpoint_is_in_the_matrix() {
    let mut registered: Vec<&str> = leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p)
        .collect();
    registered.sort();
    let mut listed: Vec<&str> = matrix().iter().map(|e| e.path).collect();
    listed.sort();
    assert_eq!(
        registered, listed,
        "every server function needs an access-control entry"
    );
}

on_both_backends!(
    anonymous_callers_are_refused_everywhere,
    cross_site_writes_are_refused
);

/// Another user's character, chat session, reply, pending card import and play run.
struct Foreign {
    character: String,
    session: String,
    reply: String,
    import: String,
    run: String,
    key: String,
}

/// Someone else's data, made through the store.
async fn someone_elses(app: &TestApp) -> Foreign {
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    let owner = app::auth::UserId(other.id);
    let spec = full_draft("Theirs").parse_spec().unwrap();
    let character = app::characters::store::insert(&app.db, &owner, &spec)
        .await
        .unwrap();
    let session = app::chat::store::open_session(&app.db, &owner, &character)
        .await
        .unwrap()
        .unwrap();
    let reply = app::chat::store::messages(&app.db, &session, None)
        .await
        .unwrap()[0]
        .id
        .clone();
    let card = app::domain::card::parse_json(br#"{"name":"Theirs","first_mes":"Hi."}"#).unwrap();
    let import = app::characters::cards::insert(&app.db, &owner, &card, None)
        .await
        .unwrap();
    let run = app::play::store::create_run(&app.db, &owner, &character)
        .await
        .unwrap()
        .unwrap();
    let key = app::keys::store::insert(
        &app.db,
        &owner,
        "theirs",
        "pf_x",
        "hash-of-theirs",
        true,
        None,
    )
    .await
    .unwrap()
    .id;
    Foreign {
        character,
        session,
        reply,
        import,
        run,
        key,
    }
}

async fn anonymous_callers_are_refused_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let theirs = someone_elses(&app).await;
    let matrix = matrix();
    for e in matrix.iter().filter(|e| e.access != Access::Public) {
        let res = e.call(&app, &new_client(), &theirs).await;
        assert_eq!(res.status(), 401, "{}", e.path);
        let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        assert_eq!(err, AppError::Unauthorized, "{}", e.path);
    }
    // Signed in, the same calls with another user's ids are "not found", like missing ones.
    app.sign_in_local().await;
    for e in matrix.iter().filter(|e| e.access == Access::Owner) {
        for ids in [
            &theirs,
            &Foreign {
                character: "x".into(),
                session: "x".into(),
                reply: "x".into(),
                import: "x".into(),
                run: "x".into(),
                key: "x".into(),
            },
        ] {
            let res = e.call(&app, &app.client, ids).await;
            assert_eq!(res.status(), 404, "{}", e.path);
            let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
            assert_eq!(err, AppError::NotFound, "{}", e.path);
        }
    }
    // And their data is untouched: not edited, copied or deleted, and no message was added to
    // their chat.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM characters WHERE name = 'Theirs' AND deleted_at IS NULL"
        )
        .await,
        1
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM characters").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM characters WHERE favourite = 0 AND tags = '[]'"
        )
        .await,
        1,
        "their labels are untouched"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM play_runs").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM chat_sessions WHERE deleted_at IS NULL AND title = 'Chat with Theirs'"
        )
        .await,
        1,
        "their chat is not renamed, trashed or branched"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM chat_sessions").await, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM pictures").await,
        0,
        "no picture kept for their character"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM play_turns").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        app::chat::store::messages(&app.db, &theirs.session, None)
            .await
            .unwrap()
            .len(),
        1
    );

    // Every page but the public ones sends an anonymous visitor to sign in.
    let anon = new_client();
    for route in server::route_list() {
        let path = route.path().replace(":id", &theirs.character);
        if PUBLIC_PAGES.contains(&route.path()) {
            continue;
        }
        let res = anon
            .get(app.url(&path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_redirection(), "{path}: {}", res.status());
        assert_eq!(res.headers()["location"], "/signin", "{path}");
    }
}

/// Pages anyone may see.
const PUBLIC_PAGES: &[&str] = &["/", "/signin"];

async fn cross_site_writes_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let save = || SaveCharacter {
        draft: draft("A"),
        import: None,
    };
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let res = app
            .request(&app.client, save())
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
    }
    // The same request from the page's own origin gets through to validation.
    let origin = app.base.clone();
    let res = app
        .request(&app.client, save())
        .header("origin", origin)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert!(matches!(err, AppError::Invalid(_)), "{err:?}");
    // Reading pages is never refused.
    let res = app
        .client
        .get(app.url("/dashboard"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
