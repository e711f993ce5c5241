//! Where the site is: its options from `Leptos.toml` (the listen address among them), the data
//! folder, and the public URL users reach it at — parsed once into [`PublicUrl`], so redirect URIs,
//! the local sign-in check and the cookie's `Secure` flag never re-read a string.

use super::{ConfigError, Env};
use leptos::config::LeptosOptions;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use url::{Host, Url};

/// The site settings read from the environment.
pub(super) struct Site {
    pub leptos: LeptosOptions,
    pub data_dir: PathBuf,
    pub public_url: Option<PublicUrl>,
}

impl Site {
    /// Whether the server listens on a loopback address.
    pub fn loopback(&self) -> bool {
        self.leptos.site_addr.ip().is_loopback()
    }
}

pub(super) fn read(env: &impl Env) -> Result<Site, ConfigError> {
    let leptos_toml = env
        .var("LEPTOS_TOML")
        .unwrap_or_else(|| "Leptos.toml".into());
    let leptos = leptos::config::get_configuration(Some(&leptos_toml))
        .map_err(|e| ConfigError::new(format!("cannot read site options from {leptos_toml}: {e}")))?
        .leptos_options;
    let data_dir = PathBuf::from(env.var("DATA_DIR").unwrap_or_else(|| "data".into()));
    let public_url = env
        .var("PUBLIC_URL")
        .map(|u| PublicUrl::parse(&u))
        .transpose()?;
    Ok(Site {
        leptos,
        data_dir,
        public_url,
    })
}

/// The URL users reach the app at (`PUBLIC_URL`): `http` or `https`, a host, an optional path
/// prefix, no query or fragment. Kept without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(Url);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::new(format!("PUBLIC_URL={text:?} {why}"));
        let mut url = Url::parse(text.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad("must be an http:// or https:// URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        let path = url.path().trim_end_matches('/').to_string();
        url.set_path(&path);
        Ok(Self(url))
    }

    /// The default: `http://` and the address the server listens on.
    pub fn listening_on(addr: SocketAddr) -> Self {
        Self(Url::parse(&format!("http://{addr}")).expect("a socket address makes a valid URL"))
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// Whether the host is this machine's loopback name or address (`localhost`, `127.0.0.1`,
    /// `[::1]`).
    pub fn is_loopback(&self) -> bool {
        match self.0.host() {
            Some(Host::Domain(d)) => d == "localhost",
            Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
            Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
            None => false,
        }
    }

    /// The URL of a path below this one: `["auth", "oidc", "callback"]` →
    /// `{public url}/auth/oidc/callback`.
    pub fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.0.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}
