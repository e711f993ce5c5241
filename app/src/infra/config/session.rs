//! Sessions: the secret the session cookie is keyed with (required off loopback, generated once
//! into the data folder on loopback), whether the cookie is `Secure`, and how long a session lasts.

use super::site::Site;
use super::{
    decode_secret, load_or_create_key, parse_bool, parse_num, random_hex, ConfigError, Env,
};
use std::{fmt, time::Duration};

/// The session settings read from the environment.
pub(super) struct Sessions {
    pub secret: SessionSecret,
    pub cookie_secure: bool,
    pub idle: Duration,
    pub max_age: Duration,
    pub renew: Duration,
}

pub(super) fn read(env: &impl Env, site: &Site) -> Result<Sessions, ConfigError> {
    let loopback = site.loopback();
    let secret = match env.var("SESSION_SECRET") {
        Some(s) => SessionSecret::from_bytes(decode_secret(&s))?,
        None if loopback => SessionSecret::from_bytes(load_or_create_key(
            &site.data_dir,
            "session.key",
            SessionSecret::LEN,
        )?)?,
        None => {
            return Err(ConfigError::new(format!(
                "SESSION_SECRET is required when listening on {} (not loopback); \
                 generate one with `openssl rand -hex 64`",
                site.leptos.site_addr
            )))
        }
    };
    let https = site.public_url.as_ref().is_some_and(|u| u.is_https());
    let cookie_secure = match env.var("COOKIE_SECURE") {
        Some(v) => parse_bool("COOKIE_SECURE", &v)?,
        None => https || !loopback,
    };
    let secs = |key: &str, default: &str| -> Result<Duration, ConfigError> {
        parse_num(key, env.var(key).as_deref().unwrap_or(default)).map(Duration::from_secs)
    };
    Ok(Sessions {
        secret,
        cookie_secure,
        idle: secs("SESSION_IDLE_SECS", "1209600")?,
        max_age: secs("SESSION_MAX_AGE_SECS", "2592000")?,
        renew: secs("SESSION_RENEW_SECS", "60")?,
    })
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
