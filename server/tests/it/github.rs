//! Sign-in with GitHub (OAuth 2.0 + the user API), against the GitHub stand-in
//! ([`GitHub`]), which checks what GitHub checks: the client secret, single-use codes, the PKCE
//! verifier.

use crate::common::standins::{github, GitHub, GitHubAccount};
use crate::common::*;
use app::auth::{GetCurrentUser, GetSignInOptions, SignOut};
use std::sync::Arc;

async fn app_with_github(backend: Backend, secret: &str) -> (TestApp, Arc<GitHub>) {
    let gh = GitHub::start().await;
    let app = spawn_app_env(backend, &gh.env(secret)).await;
    (app, gh)
}

on_both_backends!(
    github_sign_in_uses_the_user_api_and_the_verified_primary_email,
    a_wrong_client_secret_signs_nobody_in
);

async fn github_sign_in_uses_the_user_api_and_the_verified_primary_email(backend: Backend) {
    let (app, gh) = app_with_github(backend, github::CLIENT_SECRET).await;
    let options = app.call(GetSignInOptions {}).await.unwrap();
    assert_eq!(
        options.providers,
        vec![("github".to_string(), "GitHub".to_string())]
    );

    gh.sign_in_as(GitHubAccount {
        id: 4242,
        login: "octocat".into(),
        name: Some("Mona Octocat".into()),
        verified_email: Some("mona@verified.example".into()),
    });
    assert_eq!(sign_in_via(&app, "github").await, "/dashboard");
    let me = app.call(GetCurrentUser {}).await.unwrap();
    assert_eq!(me.unwrap().display_name, "Mona Octocat");
    let (email,): (Option<String>,) = app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT email FROM oauth_identities WHERE provider = 'github' AND subject = '4242'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(email.as_deref(), Some("mona@verified.example"));

    // No name: the login. No verified primary email: none is kept.
    app.call(SignOut {}).await.unwrap();
    gh.sign_in_as(GitHubAccount {
        id: 7,
        login: "hubot".into(),
        ..Default::default()
    });
    assert_eq!(sign_in_via(&app, "github").await, "/dashboard");
    let me = app.call(GetCurrentUser {}).await.unwrap();
    assert_eq!(me.unwrap().display_name, "hubot");
    let (email,): (Option<String>,) = app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT email FROM oauth_identities WHERE provider = 'github' AND subject = '7'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(email, None);
}

async fn a_wrong_client_secret_signs_nobody_in(backend: Backend) {
    let (app, gh) = app_with_github(backend, "not-the-secret").await;
    gh.sign_in_as(GitHubAccount {
        id: 1,
        login: "eve".into(),
        ..Default::default()
    });
    assert_eq!(sign_in_via(&app, "github").await, "/signin?error=provider");
    let me = app.call(GetCurrentUser {}).await.unwrap();
    assert_eq!(me, None);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
}
