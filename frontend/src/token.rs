//! The user token: how it reaches the browser and where it is kept.
//!
//! `cargo xtask demo` (and a person with `albedo token create --scope user`) opens the app at
//! `URL#token=<token>`. At start, and whenever the hash changes, the app takes the token out
//! of `location.hash`, keeps it in `localStorage["albedo.token"]` and removes it from the
//! address bar (so that it is not bookmarked or shared by accident). The header shows whether
//! a token is set, with a field to paste one and a button to clear it ([`TokenBox`]). Every
//! change sent to the API carries it as `Authorization: Bearer <token>`.
//!
//! What it is not: no login, no check of the token here: the server decides (401).

use leptos::prelude::*;

/// Key of the token in `localStorage`.
pub const STORAGE_KEY: &str = "albedo.token";

/// What a 401 tells a person.
pub const NEEDS_TOKEN: &str =
    "This needs a user token: run `albedo token create --scope user` and paste it above.";

/// Splits a `location.hash` into the token it carries (`token=...`, alone or as a parameter
/// after `?` or `&`) and the hash without it. `None` when there is no token.
pub fn split_token(hash: &str) -> Option<(String, String)> {
    let h = hash.strip_prefix('#').unwrap_or(hash);
    let (path, query) = match h.find(['?', '&']) {
        Some(i) if !h.starts_with("token=") => (&h[..i], &h[i + 1..]),
        _ => ("", h),
    };
    let mut token = None;
    let mut rest = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        match part.strip_prefix("token=") {
            Some(t) if token.is_none() => token = Some(decode(t)),
            _ => rest.push(part),
        }
    }
    let token = token.filter(|t| !t.trim().is_empty())?;
    let mut remaining = path.to_string();
    if !rest.is_empty() {
        remaining.push('?');
        remaining.push_str(&rest.join("&"));
    }
    let remaining = if remaining.is_empty() {
        String::new()
    } else {
        format!("#{remaining}")
    };
    Some((token.trim().to_string(), remaining))
}

/// Percent-decoding of a token (tokens are URL-safe; this only undoes `%XX`).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The user token the app holds (a context of the whole app).
#[derive(Debug, Clone, Copy)]
pub struct UserToken(pub RwSignal<Option<String>>);

impl UserToken {
    /// The token of the app's context (`None` when not provided or not set).
    pub fn current() -> Option<String> {
        use_context::<UserToken>().and_then(|t| t.0.get_untracked())
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The stored token, if any.
pub fn load() -> Option<String> {
    storage()?
        .get_item(STORAGE_KEY)
        .ok()
        .flatten()
        .filter(|t| !t.trim().is_empty())
}

/// Stores `token` (or removes it).
pub fn save(token: Option<&str>) {
    let Some(s) = storage() else {
        tracing::warn!("no localStorage: the token lasts until the page is closed");
        return;
    };
    let done = match token {
        Some(t) => s.set_item(STORAGE_KEY, t),
        None => s.remove_item(STORAGE_KEY),
    };
    if done.is_err() {
        tracing::warn!("could not write the token to localStorage");
    }
}

/// Takes a token out of the address bar, if it carries one: stores it, rewrites the URL
/// without it (no new history entry) and returns it.
pub fn take_from_location() -> Option<String> {
    let window = web_sys::window()?;
    let location = window.location();
    let hash = location.hash().ok()?;
    let (token, remaining) = split_token(&hash)?;
    save(Some(&token));
    let path = location.pathname().unwrap_or_default();
    let search = location.search().unwrap_or_default();
    let url = format!("{path}{search}{remaining}");
    if let Ok(history) = window.history()
        && history
            .replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url))
            .is_err()
    {
        tracing::warn!("could not remove the token from the address bar");
    }
    tracing::info!("user token taken from the address bar");
    Some(token)
}

/// The header's token status, with a field to paste a token and a button to clear it.
///
/// Hooks: `#token-status[data-set]` (`true`/`false`), `#token-input`, `#token-save`,
/// `#token-clear`.
#[component]
pub fn TokenBox() -> impl IntoView {
    let token = expect_context::<UserToken>().0;
    let draft = RwSignal::new(String::new());
    let editing = RwSignal::new(false);
    let save_draft = move || {
        let t = draft.get_untracked().trim().to_string();
        if t.is_empty() {
            return;
        }
        save(Some(&t));
        token.set(Some(t));
        draft.set(String::new());
        editing.set(false);
    };
    view! {
        <div class="token-box">
            <span
                id="token-status"
                class="token-status"
                class:set=move || token.with(Option::is_some)
                data-set=move || token.with(Option::is_some).to_string()
                title="Changes through the API (launching or cancelling experiments) need a user token"
            >
                {move || match token.get() {
                    Some(t) => format!("User token set (…{})", tail(&t)),
                    None => "No user token".to_string(),
                }}
            </span>
            <Show
                when=move || editing.get() || token.with(Option::is_none)
                fallback=move || {
                    view! {
                        <button type="button" id="token-change" on:click=move |_| editing.set(true)>
                            "Change"
                        </button>
                    }
                }
            >
                <input
                    id="token-input"
                    type="password"
                    placeholder="paste a user token"
                    autocomplete="off"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev: web_sys::KeyboardEvent| {
                        if ev.key() == "Enter" {
                            save_draft();
                        }
                    }
                />
                <button type="button" id="token-save" on:click=move |_| save_draft()>
                    "Use"
                </button>
            </Show>
            <Show when=move || token.with(Option::is_some)>
                <button
                    type="button"
                    id="token-clear"
                    on:click=move |_| {
                        save(None);
                        token.set(None);
                        editing.set(false);
                    }
                >
                    "Clear"
                </button>
            </Show>
        </div>
    }
}

/// The last 4 characters of a token (enough to tell two apart, not enough to use one).
fn tail(t: &str) -> String {
    let chars: Vec<char> = t.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_out_of_the_hash() {
        assert_eq!(
            split_token("#token=abc123"),
            Some(("abc123".into(), String::new()))
        );
        assert_eq!(
            split_token("#/experiments?token=abc&x=1"),
            Some(("abc".into(), "#/experiments?x=1".into()))
        );
        assert_eq!(
            split_token("#/workers&token=a%2Bb"),
            Some(("a+b".into(), "#/workers".into()))
        );
        assert_eq!(split_token("#/experiments"), None);
        assert_eq!(split_token("#token="), None);
        assert_eq!(split_token(""), None);
        assert_eq!(tail("abcdefgh"), "efgh");
        assert_eq!(tail("ab"), "ab");
    }
}
