//! The colour theme: light, dark, or the system's setting (the default). The choice is a cookie,
//! so the server renders the page in it from the first byte — no flash, and it works without
//! JavaScript (the chooser is a plain form). The colours themselves are in `style/main.css`
//! (`light-dark()` tokens switched by `color-scheme`).

use crate::error::AppError;
use leptos::prelude::*;

/// The cookie that keeps the choice.
pub const COOKIE: &str = "pf_theme";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    System,
    Light,
    Dark,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Light, Theme::Dark];

    pub fn key(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "Auto",
            Theme::Light => "Light",
            Theme::Dark => "Dark",
        }
    }

    pub fn parse(s: &str) -> Option<Theme> {
        Theme::ALL.into_iter().find(|t| t.key() == s)
    }

    /// The theme named by a `Cookie` header, if any.
    pub fn from_cookie_header(header: &str) -> Theme {
        header
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .and_then(|(_, v)| Theme::parse(v))
            .unwrap_or(Theme::System)
    }
}

/// The theme of the page being rendered (the request's cookie; in the browser, the document's).
pub fn current() -> Theme {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|p| {
                p.headers
                    .get(http::header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .map(Theme::from_cookie_header)
            })
            .unwrap_or(Theme::System)
    }
    #[cfg(not(feature = "ssr"))]
    {
        document()
            .document_element()
            .and_then(|e| e.get_attribute("data-theme"))
            .and_then(|t| Theme::parse(&t))
            .unwrap_or(Theme::System)
    }
}

/// Keeps `theme` (`system`, `light` or `dark`) for this browser, for a year. A plain form post:
/// the framework sends it back to the page it came from.
#[server(endpoint = "theme")]
pub async fn set_theme(theme: String) -> Result<(), AppError> {
    let Some(theme) = Theme::parse(&theme) else {
        return Err(AppError::BadRequest(
            "The theme must be system, light or dark.".into(),
        ));
    };
    let cookie = match theme {
        Theme::System => format!("{COOKIE}=; Path=/; Max-Age=0; SameSite=Lax"),
        t => format!(
            "{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            t.key()
        ),
    };
    if let (Some(res), Ok(value)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(&cookie),
    ) {
        res.append_header(http::header::SET_COOKIE, value);
    }
    Ok(())
}

/// The theme chooser at the foot of every page.
#[component]
pub fn ThemeChooser() -> impl IntoView {
    let current = current();
    let action = <SetTheme as leptos::server_fn::ServerFn>::url();
    view! {
        <footer class="site-foot">
            <form method="post" action=action class="theme-chooser">
                <span id="theme-label">"Theme"</span>
                <span role="group" aria-labelledby="theme-label">
                    {Theme::ALL.into_iter().map(|t| view! {
                        <button type="submit" name="theme" value=t.key() aria-pressed=(t == current).to_string()>
                            {t.label()}
                        </button>
                    }).collect_view()}
                </span>
            </form>
        </footer>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_names_the_theme_and_anything_else_is_the_system_one() {
        assert_eq!(Theme::from_cookie_header("a=1; pf_theme=dark"), Theme::Dark);
        assert_eq!(Theme::from_cookie_header("pf_theme=light"), Theme::Light);
        assert_eq!(Theme::from_cookie_header("pf_theme=\"><x"), Theme::System);
        assert_eq!(Theme::from_cookie_header(""), Theme::System);
    }
}
