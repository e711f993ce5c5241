//! Several servers, one Postgres: what a deployment with replicas behind a proxy relies on, shown
//! with two real `personaflux` processes on one database (the README's "Several servers"). A
//! session made on one is valid on the other (the shared `SESSION_SECRET`), a reply generating on
//! one is stopped from the other, a reply cut by killing one is recovered (`interrupted`) by the
//! other, and the per-user model-call limit counts the calls of both.

use crate::common::process::ServerProcess;
use crate::common::*;
use crate::reliability::{eventually, gemini_env, silent_after, start_reply, stored, with, words};
use app::auth::GetCurrentUser;
use app::chat::{ChatEvent, MessageStatus, SendMessage, StopReply};
use app::error::AppError;
use mock_llm::MockLlm;
use std::time::{Duration, Instant};

/// The secrets every replica of a deployment shares (README: "Several servers").
const SESSION_SECRET: &str = "5e551011a5ec12e7a11ce5a5ec12e7a11ce5a5ec12e7a11ce5a5ec12e7a11ce55e551011a5ec12e7a11ce5a5ec12e7a11ce5a5ec12e7a11ce5a5ec12e7a11ce5";
const TOKEN_KEY: &str = "70be11c0de70be11c0de70be11c0de70be11c0de70be11c0de70be11c0de70be";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_one_postgres() {
    // Five model calls over about fifteen seconds must fall in one minute's window.
    within_one_rate_window(40).await;
    let mock = MockLlm::start().await;
    let db = TestDb::new(Backend::Postgres).await;
    let env = gemini_env(&mock);
    let env = with(
        &env,
        &[
            ("SESSION_SECRET", SESSION_SECRET),
            ("TOKEN_ENCRYPTION_KEY", TOKEN_KEY),
            ("REPLY_STALE_SECS", "1"),
            ("LIMIT_MODEL_CALLS_PER_MINUTE", "4"),
        ],
    );
    // One browser (one cookie jar) in front of both, as behind a proxy without sticky sessions.
    let mut a = ServerProcess::start_new(&db, &env).await;
    let b = ServerProcess::start(&db, &env, a.app.client.clone()).await;

    // A session made on A is valid on B.
    a.app.sign_in_local().await;
    let on_b = b.app.call(GetCurrentUser {}).await.unwrap();
    assert!(
        on_b.is_some(),
        "B does not know A's session:\n{}",
        b.output()
    );
    let character = save_character(&b.app, "Mira").await; // model call 1 (B)
    let session = open_chat(&a.app, &character).await.session_id;

    // A reply generating on A is stopped from B.
    mock.push(silent_after("Once upon ", 5000));
    let (mut reply, reply_id, first) = start_reply(&a.app, &session, "A story?").await; // 2 (A)
    assert_eq!(
        b.app
            .call(StopReply {
                reply_id: reply_id.clone()
            })
            .await,
        Ok(())
    );
    let events = reply.rest().await;
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Stopped
        }),
        "{}",
        a.output()
    );
    assert_eq!(stored(&a.app, &reply_id).await, ("stopped".into(), first));

    // A reply cut by killing A is recovered by B, which keeps running.
    mock.push(words(200, 40));
    let (mut reply, reply_id, _) = start_reply(&a.app, &session, "Tell me everything.").await; // 3 (A)
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored(&a.app, &reply_id).await.1.len() < 12 {
        assert!(Instant::now() < deadline, "nothing was flushed");
        reply.next().await.expect("the reply goes on");
    }
    a.kill();
    let (status, flushed) = stored(&b.app, &reply_id).await;
    assert_eq!(status, "streaming");
    // Past REPLY_STALE_SECS the dead server's heartbeat is stale: B, opening the chat, says so.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let view = open_chat(&b.app, &character).await;
    let m = view.messages.iter().find(|m| m.id == reply_id).unwrap();
    assert_eq!(m.status, MessageStatus::Interrupted, "{}", b.output());
    assert_eq!(m.content, flushed);
    let (status, _) = eventually(&b.app, &reply_id, Duration::from_secs(5), |r| {
        r.0 == "interrupted"
    })
    .await;
    assert_eq!(status, "interrupted");

    // The chat goes on on B: call 4 of the minute. Each server made two, yet the fifth is refused
    // on B and on a server started just now: the limit counts in the shared database.
    let events = send_message(&b.app, &session, "Are you back?").await.0; // 4 (B)
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Complete
        }),
        "{events:?}"
    );
    let over = SendMessage {
        session_id: session.clone(),
        text: "Again".into(),
        after: None,
    };
    let res = b.app.send(over.clone()).await;
    assert_eq!(res.status(), 429, "{}", b.output());
    assert!(matches!(
        result::<()>(res).await,
        Err(AppError::RateLimited { .. })
    ));
    let c = ServerProcess::start(&db, &env, b.app.client.clone()).await;
    let res = c.app.send(over).await;
    assert_eq!(res.status(), 429, "{}", c.output());
}
