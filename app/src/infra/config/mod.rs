//! Configuration from environment variables (and `.env`, loaded by the server's `main`), read once
//! at start-up into typed values that the rest of the server takes as they are. Every variable is
//! documented in the README with its default.
//!
//! One file per concern: [`site`] (site options, listen address, data folder, public URL),
//! [`session`] (the session secret, cookie and expiry), [`llm`] (the model provider), [`auth`]
//! (sign-in providers and the key for their tokens) and [`replies`] (stale replies, shutdown
//! grace). This module holds [`Config`], where the
//! environment comes from ([`Env`]) and the parsing helpers they share.

mod auth;
mod limits;
mod llm;
mod replies;
mod session;
mod site;
#[cfg(test)]
mod tests;

pub use auth::{AuthConfig, GitHubConfig, OidcProviderConfig, SecondMeConfig};
pub use limits::LimitsConfig;
pub use llm::LlmConfig;
pub use replies::RepliesConfig;
pub use session::SessionSecret;
pub use site::PublicUrl;

use leptos::config::LeptosOptions;
use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`. A secret: a Postgres URL carries the password.
    pub database_url: Secret,
    /// Where the embedded defaults keep their files (the SQLite database, the generated session secret).
    pub data_dir: PathBuf,
    /// Site options from `Leptos.toml`, with `LEPTOS_*` overrides; `site_addr` is the listen address.
    pub leptos: LeptosOptions,
    /// `PUBLIC_URL` as configured; [`Config::public_url`] gives it with its default.
    pub public_url: Option<PublicUrl>,
    pub session_secret: SessionSecret,
    /// Whether the session cookie is marked `Secure` (only sent over HTTPS).
    pub cookie_secure: bool,
    /// A session ends after this long without a request…
    pub session_idle: Duration,
    /// …and after this long since sign-in, however active.
    pub session_max_age: Duration,
    /// How often an active session's idle expiry is pushed back (one write per interval).
    pub session_renew: Duration,
    pub llm: LlmConfig,
    pub log_format: LogFormat,
    pub auth: AuthConfig,
    /// Limits on model calls and sign-ins.
    pub limits: LimitsConfig,
    pub replies: RepliesConfig,
    /// `METRICS_TOKEN`: the bearer token that reads `/metrics` (none: no metrics route).
    pub metrics_token: Option<Secret>,
}

/// A credential from the environment. Never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Where the environment comes from: the process environment in production, a map in tests.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned().filter(|v| !v.trim().is_empty())
    }
}

impl Config {
    /// Reads the configuration. `LEPTOS_TOML` names the site options file (default `Leptos.toml`).
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let site = site::read(env)?;
        let database_url = env
            .var("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/personaflux.db", site.data_dir.display()));
        let sessions = session::read(env, &site)?;
        let llm = llm::read(env)?;
        let auth = auth::read(env, &site.data_dir, site.loopback())?;
        let replies = replies::read(env, &llm)?;

        let log_format = match env.var("LOG_FORMAT").as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(format!(
                    "LOG_FORMAT={other} is not supported; use `text` or `json`"
                )))
            }
        };

        Ok(Self {
            database_url: Secret::new(database_url),
            data_dir: site.data_dir,
            leptos: site.leptos,
            public_url: site.public_url,
            session_secret: sessions.secret,
            cookie_secure: sessions.cookie_secure,
            session_idle: sessions.idle,
            session_max_age: sessions.max_age,
            session_renew: sessions.renew,
            llm,
            log_format,
            auth,
            limits: limits::read(env)?,
            replies,
            metrics_token: match env.var("METRICS_TOKEN") {
                Some(t) if t.trim().len() < 16 => {
                    return Err(ConfigError::new(
                        "METRICS_TOKEN must be at least 16 characters (it guards /metrics)",
                    ))
                }
                Some(t) => Some(Secret::new(t.trim())),
                None => None,
            },
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.leptos.site_addr
    }

    /// The URL users reach the app at: `PUBLIC_URL`, or `http://` and the listen address.
    pub fn public_url(&self) -> PublicUrl {
        self.public_url
            .clone()
            .unwrap_or_else(|| PublicUrl::listening_on(self.listen_addr()))
    }

    /// Local sign-in ("continue as local user") exists only while the server listens on loopback.
    /// A server on loopback behind a public reverse proxy (a `PUBLIC_URL` that is not itself a
    /// loopback address) does not offer it either.
    pub fn local_sign_in_allowed(&self) -> bool {
        self.leptos.site_addr.ip().is_loopback()
            && self.public_url.as_ref().is_none_or(PublicUrl::is_loopback)
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(ConfigError::new(format!(
            "{key} must be true or false, not {v:?}"
        ))),
    }
}

fn parse_num(key: &str, v: &str) -> Result<u64, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| ConfigError::new(format!("{key} must be a whole number, not {v:?}")))
}

/// A secret given as hex is decoded; any other text is used as its bytes.
fn decode_secret(s: &str) -> Vec<u8> {
    let s = s.trim();
    let is_hex = s.len().is_multiple_of(2) && s.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// Creates the data folder (and any missing parents) readable by its owner only (0700).
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Refuses a key file that anyone but its owner may read or write: the key would be as good as
/// published on a shared machine.
fn check_private(path: &std::path::Path) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(ConfigError::new(format!(
                "{path} is accessible to other users (mode {mode:03o}); make it private with \
                 `chmod 600 {path}`",
                path = path.display(),
                mode = mode & 0o777
            )));
        }
    }
    Ok(())
}

/// A random key of `len` bytes, generated once into `data_dir/name` (mode 0600, hex; the folder
/// 0700 if it is created). An existing key file must be private to its owner.
fn load_or_create_key(
    data_dir: &std::path::Path,
    name: &str,
    len: usize,
) -> Result<Vec<u8>, ConfigError> {
    let path = data_dir.join(name);
    let io = |e: std::io::Error| ConfigError::new(format!("{}: {e}", path.display()));
    if let Ok(text) = std::fs::read_to_string(&path) {
        check_private(&path)?;
        return Ok(decode_secret(&text));
    }
    create_private_dir(data_dir).map_err(io)?;
    let hex = random_hex(len);
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => f.write_all(hex.as_bytes()).map_err(io)?,
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    check_private(&path)?;
    let text = std::fs::read_to_string(&path).map_err(io)?;
    Ok(decode_secret(&text))
}

fn random_hex(len: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
