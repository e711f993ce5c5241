//! Configuration from environment variables (and `.env`, loaded by the server's `main`).
//! Every variable is documented in the README with its default.

use super::llm::{gemini::GeminiConfig, http::RetryPolicy, openai::OpenAiConfig, Sampling};
use leptos::config::LeptosOptions;
use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Where the embedded defaults keep their files (the SQLite database, the generated session secret).
    pub data_dir: PathBuf,
    /// Site options from `Leptos.toml`, with `LEPTOS_*` overrides; `site_addr` is the listen address.
    pub leptos: LeptosOptions,
    pub session_secret: SessionSecret,
    /// Whether the session cookie is marked `Secure` (only sent over HTTPS).
    pub cookie_secure: bool,
    /// A session ends after this long without a request…
    pub session_idle: Duration,
    /// …and after this long since sign-in, however active.
    pub session_max_age: Duration,
    pub llm: LlmConfig,
    pub log_format: LogFormat,
    pub oauth: OAuthConfig,
}

/// Sign-in providers and what their flows need.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The URL users reach the app at; redirect URIs are `{public_url}/auth/{id}/callback`.
    /// Unset: `http://` and the address the server is listening on.
    pub public_url: Option<String>,
    pub providers: Vec<OidcProviderConfig>,
    pub github: Option<GitHubConfig>,
    pub secondme: Option<SecondMeConfig>,
    /// Key for provider tokens at rest (32 bytes).
    pub token_key: Option<Vec<u8>>,
}

/// GitHub (OAuth 2.0). The endpoints are configurable for tests and GitHub Enterprise.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_url: String,
    pub token_url: String,
    pub api_url: String,
}

/// SecondMe (OAuth 2.0; responses wrapped as `{code: 0, data: …}`). Every endpoint is configuration.
#[derive(Clone, Debug)]
pub struct SecondMeConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_url: String,
    pub token_url: String,
    pub refresh_url: String,
    pub userinfo_url: String,
    pub shades_url: String,
    pub scopes: Vec<String>,
}

/// An OpenID Connect provider, found by discovery from its issuer URL.
#[derive(Clone, Debug)]
pub struct OidcProviderConfig {
    /// Short name used in URLs and as the identity's provider (`google`, `oidc`).
    pub id: String,
    /// Button label ("Google").
    pub label: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Clone, Debug)]
pub enum LlmConfig {
    /// The built-in offline writer: no key, no network. `token_delay` paces its streaming.
    Offline { token_delay: Duration },
    /// Google Gemini's REST API.
    Gemini(GeminiConfig),
    /// An OpenAI-compatible chat completions endpoint (Ollama, llama.cpp, vLLM).
    OpenAi(OpenAiConfig),
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

/// The key material for the session cookie. Never printed.
#[derive(Clone)]
pub struct SessionSecret(Vec<u8>);

impl SessionSecret {
    /// Bytes needed: the cookie key is 64 bytes (signing + encryption).
    pub const LEN: usize = 64;

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ConfigError> {
        if bytes.len() < Self::LEN {
            return Err(ConfigError::new(format!(
                "SESSION_SECRET must be at least {} bytes long (it has {}); \
                 generate one with `openssl rand -hex 64`",
                Self::LEN,
                bytes.len()
            )));
        }
        if bytes.iter().all(|b| *b == bytes[0]) {
            return Err(ConfigError::new(
                "SESSION_SECRET is a single repeated byte; generate a random one with `openssl rand -hex 64`",
            ));
        }
        Ok(Self(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// A fresh random secret, hex-encoded so it can be kept in a text file.
    pub fn generate_hex() -> String {
        random_hex(Self::LEN)
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
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
        let leptos_toml = env
            .var("LEPTOS_TOML")
            .unwrap_or_else(|| "Leptos.toml".into());
        let leptos = leptos::config::get_configuration(Some(&leptos_toml))
            .map_err(|e| {
                ConfigError::new(format!("cannot read site options from {leptos_toml}: {e}"))
            })?
            .leptos_options;

        let data_dir = PathBuf::from(env.var("DATA_DIR").unwrap_or_else(|| "data".into()));
        let database_url = env
            .var("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/personaflux.db", data_dir.display()));
        let loopback = leptos.site_addr.ip().is_loopback();

        let session_secret = match env.var("SESSION_SECRET") {
            Some(s) => SessionSecret::from_bytes(decode_secret(&s))?,
            None if loopback => load_or_create_secret(&data_dir)?,
            None => {
                return Err(ConfigError::new(format!(
                    "SESSION_SECRET is required when listening on {} (not loopback); \
                     generate one with `openssl rand -hex 64`",
                    leptos.site_addr
                )))
            }
        };

        let public_url = env.var("PUBLIC_URL");
        let https = public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let cookie_secure = match env.var("COOKIE_SECURE") {
            Some(v) => parse_bool("COOKIE_SECURE", &v)?,
            None => https || !loopback,
        };

        let secs = |key: &str, default: &str| -> Result<Duration, ConfigError> {
            parse_num(key, env.var(key).as_deref().unwrap_or(default)).map(Duration::from_secs)
        };
        let session_idle = secs("SESSION_IDLE_SECS", "1209600")?;
        let session_max_age = secs("SESSION_MAX_AGE_SECS", "2592000")?;
        let llm = llm_config(env)?;
        let oauth = oauth_config(env, &data_dir, loopback)?;

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
            database_url,
            data_dir,
            leptos,
            session_secret,
            cookie_secure,
            session_idle,
            session_max_age,
            llm,
            log_format,
            oauth,
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.leptos.site_addr
    }

    /// Local sign-in ("continue as local user") exists only while the server listens on loopback.
    /// A server on loopback behind a public reverse proxy (a `PUBLIC_URL` that is not itself a
    /// loopback address) does not offer it either.
    pub fn local_sign_in_allowed(&self) -> bool {
        let public_is_local = self.oauth.public_url.as_deref().is_none_or(|u| {
            let host = u
                .split("://")
                .nth(1)
                .unwrap_or("")
                .split(['/', '?'])
                .next()
                .unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, p)| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        });
        self.leptos.site_addr.ip().is_loopback() && public_is_local
    }
}

fn oauth_config(
    env: &impl Env,
    data_dir: &std::path::Path,
    loopback: bool,
) -> Result<OAuthConfig, ConfigError> {
    let public_url = env
        .var("PUBLIC_URL")
        .map(|u| u.trim_end_matches('/').to_string());
    let mut providers = Vec::new();
    if let Some(client_id) = env.var("GOOGLE_CLIENT_ID") {
        providers.push(OidcProviderConfig {
            id: "google".into(),
            label: "Google".into(),
            issuer: "https://accounts.google.com".into(),
            client_id,
            client_secret: Secret::new(env.var("GOOGLE_CLIENT_SECRET").ok_or_else(|| {
                ConfigError::new("GOOGLE_CLIENT_SECRET is required with GOOGLE_CLIENT_ID")
            })?),
        });
    }
    if let Some(issuer) = env.var("OIDC_ISSUER") {
        let need = |k: &str| {
            env.var(k)
                .ok_or_else(|| ConfigError::new(format!("{k} is required with OIDC_ISSUER")))
        };
        providers.push(OidcProviderConfig {
            id: "oidc".into(),
            label: env
                .var("OIDC_LABEL")
                .unwrap_or_else(|| "OpenID Connect".into()),
            issuer,
            client_id: need("OIDC_CLIENT_ID")?,
            client_secret: Secret::new(need("OIDC_CLIENT_SECRET")?),
        });
    }
    let github = match env.var("GITHUB_CLIENT_ID") {
        None => None,
        Some(client_id) => Some(GitHubConfig {
            client_id,
            client_secret: Secret::new(env.var("GITHUB_CLIENT_SECRET").ok_or_else(|| {
                ConfigError::new("GITHUB_CLIENT_SECRET is required with GITHUB_CLIENT_ID")
            })?),
            auth_url: env
                .var("GITHUB_AUTH_URL")
                .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
            token_url: env
                .var("GITHUB_TOKEN_URL")
                .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
            api_url: env
                .var("GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".into()),
        }),
    };
    let secondme = match env.var("SECONDME_CLIENT_ID") {
        None => None,
        Some(client_id) => {
            let need = |k: &str| {
                env.var(k).ok_or_else(|| {
                    ConfigError::new(format!("{k} is required with SECONDME_CLIENT_ID"))
                })
            };
            let token_url = need("SECONDME_TOKEN_URL")?;
            Some(SecondMeConfig {
                client_id,
                client_secret: Secret::new(need("SECONDME_CLIENT_SECRET")?),
                auth_url: need("SECONDME_AUTH_URL")?,
                refresh_url: env
                    .var("SECONDME_REFRESH_URL")
                    .unwrap_or_else(|| token_url.clone()),
                token_url,
                userinfo_url: need("SECONDME_USERINFO_URL")?,
                shades_url: need("SECONDME_SHADES_URL")?,
                scopes: env
                    .var("SECONDME_SCOPES")
                    .unwrap_or_else(|| "user.info user.info.shades chat".into())
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            })
        }
    };
    let token_key =
        match env.var("TOKEN_ENCRYPTION_KEY") {
            Some(k) => Some(decode_secret(&k)),
            None if providers.is_empty() && github.is_none() && secondme.is_none() => None,
            None if loopback => Some(load_or_create_key(data_dir, "token.key", 32)?),
            None => return Err(ConfigError::new(
                "TOKEN_ENCRYPTION_KEY is required with sign-in providers when not on loopback; \
                 generate one with `openssl rand -hex 32`",
            )),
        };
    if let Some(k) = &token_key {
        if k.len() != 32 {
            return Err(ConfigError::new(format!(
                "TOKEN_ENCRYPTION_KEY must be 32 bytes (64 hex digits); it has {}",
                k.len()
            )));
        }
    }
    Ok(OAuthConfig {
        public_url,
        providers,
        github,
        secondme,
        token_key,
    })
}

fn llm_config(env: &impl Env) -> Result<LlmConfig, ConfigError> {
    let num = |key: &str, default: &str| -> Result<u64, ConfigError> {
        parse_num(key, env.var(key).as_deref().unwrap_or(default))
    };
    let float = |key: &str, default: f32, max: f32| -> Result<f32, ConfigError> {
        match env.var(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|x| (0.0..=max).contains(x))
                .ok_or_else(|| {
                    ConfigError::new(format!("{key} must be a number from 0 to {max}, not {v:?}"))
                }),
        }
    };
    let required = |key: &str, provider: &str| -> Result<String, ConfigError> {
        env.var(key).ok_or_else(|| {
            ConfigError::new(format!("{key} is required when LLM_PROVIDER={provider}"))
        })
    };
    let sampling = || -> Result<Sampling, ConfigError> {
        Ok(Sampling {
            temperature: float("LLM_TEMPERATURE", 0.9, 2.0)?,
            top_p: float("LLM_TOP_P", 0.95, 1.0)?,
            max_output_tokens: num("LLM_MAX_OUTPUT_TOKENS", "2048")? as u32,
        })
    };
    let retry = || -> Result<RetryPolicy, ConfigError> {
        let max_attempts = num("LLM_MAX_ATTEMPTS", "4")? as usize;
        if max_attempts == 0 {
            return Err(ConfigError::new("LLM_MAX_ATTEMPTS must be at least 1"));
        }
        Ok(RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(num("LLM_RETRY_BASE_MS", "500")?),
            max_delay: Duration::from_secs(20),
            budget: Duration::from_secs(num("LLM_RETRY_BUDGET_SECS", "60")?),
        })
    };
    let timeout = || num("LLM_TIMEOUT_SECS", "60").map(Duration::from_secs);
    let idle = || num("LLM_IDLE_TIMEOUT_SECS", "30").map(Duration::from_secs);
    Ok(
        match env.var("LLM_PROVIDER").as_deref().unwrap_or("offline") {
            "offline" => LlmConfig::Offline {
                token_delay: Duration::from_millis(num("OFFLINE_TOKEN_DELAY_MS", "30")?),
            },
            "gemini" => LlmConfig::Gemini(GeminiConfig {
                api_key: Secret::new(required("GEMINI_API_KEY", "gemini")?),
                model: env
                    .var("GEMINI_MODEL")
                    .unwrap_or_else(|| "gemini-2.5-flash".into()),
                base_url: env
                    .var("GEMINI_BASE_URL")
                    .unwrap_or_else(|| "https://generativelanguage.googleapis.com/v1beta".into()),
                thinking_budget: match env.var("GEMINI_THINKING_BUDGET").as_deref() {
                    None => Some(0),
                    Some("default") => None,
                    Some(v) => Some(v.trim().parse().map_err(|_| {
                        ConfigError::new(format!(
                            "GEMINI_THINKING_BUDGET must be a whole number or `default`, not {v:?}"
                        ))
                    })?),
                },
                safety_threshold: match env.var("GEMINI_SAFETY_THRESHOLD").as_deref() {
                    None => Some("BLOCK_ONLY_HIGH".into()),
                    Some("default") => None,
                    Some(v) => Some(v.trim().to_string()),
                },
                sampling: sampling()?,
                timeout: timeout()?,
                idle_timeout: idle()?,
                retry: retry()?,
            }),
            "openai" => LlmConfig::OpenAi(OpenAiConfig {
                base_url: required("OPENAI_BASE_URL", "openai")?,
                api_key: env.var("OPENAI_API_KEY").map(Secret::new),
                model: required("OPENAI_MODEL", "openai")?,
                sampling: sampling()?,
                timeout: timeout()?,
                idle_timeout: idle()?,
                retry: retry()?,
            }),
            other => {
                return Err(ConfigError::new(format!(
                    "LLM_PROVIDER={other} is not supported; use `offline`, `gemini` or `openai`"
                )))
            }
        },
    )
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

/// For the embedded default: the secret is generated once and kept in `data/session.key` (mode 0600).
fn load_or_create_secret(data_dir: &std::path::Path) -> Result<SessionSecret, ConfigError> {
    SessionSecret::from_bytes(load_or_create_key(
        data_dir,
        "session.key",
        SessionSecret::LEN,
    )?)
}

/// A random key of `len` bytes, generated once into `data_dir/name` (mode 0600, hex).
fn load_or_create_key(
    data_dir: &std::path::Path,
    name: &str,
    len: usize,
) -> Result<Vec<u8>, ConfigError> {
    let path = data_dir.join(name);
    let io = |e: std::io::Error| ConfigError::new(format!("{}: {e}", path.display()));
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(decode_secret(&text));
    }
    std::fs::create_dir_all(data_dir).map_err(io)?;
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
    let text = std::fs::read_to_string(&path).map_err(io)?;
    Ok(decode_secret(&text))
}

fn random_hex(len: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
