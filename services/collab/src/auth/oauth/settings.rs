//! Which providers people may sign in with: the providers file (`--auth-providers`) and the
//! one-provider shortcuts (`TANDEM_GOOGLE_CLIENT_ID`, `TANDEM_GITHUB_CLIENT_ID`,
//! `TANDEM_OIDC_ISSUER`, each with its client id and secret).
//!
//! The file is TOML, one `[[provider]]` table per provider:
//!
//! ```toml
//! [[provider]]
//! name = "acme"                      # the URL segment: /auth/oauth/acme/start
//! kind = "oidc"                      # "oidc", "google" or "github"
//! label = "Acme SSO"                 # the button's text (default: per kind, or the name)
//! issuer = "https://sso.acme.example/realms/main"   # oidc only
//! client_id = "tandem"
//! client_secret_env = "ACME_CLIENT_SECRET"          # or client_secret = "..."
//! scopes = ["openid", "email", "profile"]           # optional
//! ```

use std::path::Path;

use anyhow::{Context, bail};
use oauth2::ClientSecret;
use serde::Deserialize;

use crate::auth::AuthConfig;

/// Google's issuer, as its discovery document names it.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// Google also signs ID tokens with this `iss` (its documentation says to accept both).
const GOOGLE_ISSUER_BARE: &str = "accounts.google.com";

/// Longest provider name, in characters (it is a URL segment and a label in logs).
const MAX_NAME_CHARS: usize = 32;

/// What kind of provider, with what that kind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An OpenID Connect provider (Google is one, with its issuer preset).
    Oidc {
        /// The issuer identifier, exactly as configured (ID tokens must carry it as `iss`).
        issuer: String,
        /// Other `iss` values this issuer is known to sign with.
        also_accepted: Vec<String>,
    },
    /// GitHub: plain OAuth 2.0; who signed in comes from its REST API.
    GitHub,
}

/// One provider's settings, resolved (secrets read, defaults applied).
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The URL segment.
    pub name: String,
    /// The button's text.
    pub label: String,
    /// The kind.
    pub kind: Kind,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (its `Debug` does not show it).
    pub client_secret: ClientSecret,
    /// The scopes asked for.
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "provider")]
    providers: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EntryKind {
    Oidc,
    Google,
    GitHub,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    kind: EntryKind,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// Every configured provider: the file's, then the shortcuts'. Fails on anything wrong (an
/// unknown key, a missing secret, two providers of one name), so a typo stops the server
/// rather than silently dropping a way to sign in.
pub fn load(config: &AuthConfig) -> anyhow::Result<Vec<ProviderSettings>> {
    let env = |name: &str| std::env::var(name).ok();
    let mut providers = match &config.auth_providers {
        Some(path) => from_file(path, &env)?,
        None => Vec::new(),
    };
    providers.extend(from_shortcuts(config)?);
    check_unique(&providers)?;
    Ok(providers)
}

fn from_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<ProviderSettings>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the providers file {}", path.display()))?;
    parse(&text, env).with_context(|| format!("in the providers file {}", path.display()))
}

/// Parses a providers file; `env` looks up `client_secret_env` variables.
fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<ProviderSettings>> {
    let file: File = toml::from_str(text)?;
    file.providers
        .into_iter()
        .map(|entry| {
            let name = entry.name.clone();
            resolve(entry, env).with_context(|| format!("provider {name:?}"))
        })
        .collect()
}

fn resolve(entry: Entry, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<ProviderSettings> {
    check_name(&entry.name)?;
    let secret = match (entry.client_secret, entry.client_secret_env) {
        (Some(secret), None) => secret,
        (None, Some(var)) => env(&var)
            .filter(|s| !s.is_empty())
            .with_context(|| format!("client_secret_env names {var}, which is not set"))?,
        (Some(_), Some(_)) => bail!("give client_secret or client_secret_env, not both"),
        (None, None) => bail!("client_secret (or client_secret_env) is missing"),
    };
    let kind = match (entry.kind, entry.issuer) {
        (EntryKind::Oidc, Some(issuer)) => oidc_kind(issuer)?,
        (EntryKind::Oidc, None) => bail!("an oidc provider needs its issuer URL"),
        (EntryKind::Google, None) => google_kind(),
        (EntryKind::GitHub, None) => Kind::GitHub,
        (_, Some(_)) => bail!("issuer is for kind = \"oidc\" only"),
    };
    let label = entry
        .label
        .unwrap_or_else(|| default_label(entry.kind, &entry.name));
    settings(
        entry.name,
        label,
        kind,
        entry.client_id,
        secret,
        entry.scopes,
    )
}

fn from_shortcuts(config: &AuthConfig) -> anyhow::Result<Vec<ProviderSettings>> {
    let mut providers = Vec::new();
    let pair = |id: &Option<String>, secret: &Option<String>, what: &str| match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id.clone(), secret.clone()))),
        (None, None) => Ok(None),
        _ => bail!("set both the {what} client id and client secret, or neither"),
    };
    let google = &config.google_client_id;
    if let Some((id, secret)) = pair(google, &config.google_client_secret, "Google")? {
        let label = default_label(EntryKind::Google, "google");
        providers.push(settings(
            "google".into(),
            label,
            google_kind(),
            id,
            secret,
            None,
        )?);
    }
    let github = &config.github_client_id;
    if let Some((id, secret)) = pair(github, &config.github_client_secret, "GitHub")? {
        let label = default_label(EntryKind::GitHub, "github");
        providers.push(settings(
            "github".into(),
            label,
            Kind::GitHub,
            id,
            secret,
            None,
        )?);
    }
    let oidc = pair(&config.oidc_client_id, &config.oidc_client_secret, "OIDC")?;
    match (&config.oidc_issuer, oidc) {
        (Some(issuer), Some((id, secret))) => {
            let kind = oidc_kind(issuer.clone()).context("TANDEM_OIDC_ISSUER")?;
            let label = default_label(EntryKind::Oidc, "oidc");
            providers.push(settings("oidc".into(), label, kind, id, secret, None)?);
        }
        (None, None) => {}
        _ => bail!("TANDEM_OIDC_ISSUER needs TANDEM_OIDC_CLIENT_ID and TANDEM_OIDC_CLIENT_SECRET"),
    }
    Ok(providers)
}

fn settings(
    name: String,
    label: String,
    kind: Kind,
    client_id: String,
    secret: String,
    scopes: Option<Vec<String>>,
) -> anyhow::Result<ProviderSettings> {
    if client_id.trim().is_empty() {
        bail!("client_id is empty");
    }
    let mut scopes = scopes.unwrap_or_else(|| default_scopes(&kind));
    // Without `openid` there is no ID token, and nothing to check who signed in against.
    if matches!(kind, Kind::Oidc { .. }) && !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    Ok(ProviderSettings {
        name,
        label,
        kind,
        client_id,
        client_secret: ClientSecret::new(secret),
        scopes,
    })
}

fn oidc_kind(issuer: String) -> anyhow::Result<Kind> {
    let url =
        url::Url::parse(&issuer).with_context(|| format!("issuer {issuer:?} is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        bail!("issuer {issuer:?} must be an http(s) URL without query or fragment");
    }
    Ok(Kind::Oidc {
        issuer,
        also_accepted: Vec::new(),
    })
}

fn google_kind() -> Kind {
    Kind::Oidc {
        issuer: GOOGLE_ISSUER.into(),
        also_accepted: vec![GOOGLE_ISSUER_BARE.into()],
    }
}

fn default_label(kind: EntryKind, name: &str) -> String {
    match kind {
        EntryKind::Google => "Google".into(),
        EntryKind::GitHub => "GitHub".into(),
        EntryKind::Oidc if name == "oidc" => "Single sign-on".into(),
        EntryKind::Oidc => name.into(),
    }
}

fn default_scopes(kind: &Kind) -> Vec<String> {
    let scopes: &[&str] = match kind {
        Kind::Oidc { .. } => &["openid", "email", "profile"],
        // `user:email` reads the verified addresses even when the profile's is private.
        Kind::GitHub => &["read:user", "user:email"],
    };
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("name must be 1 to {MAX_NAME_CHARS} of a-z, 0-9, - and _ (it is a URL segment)");
    }
    Ok(())
}

fn check_unique(providers: &[ProviderSettings]) -> anyhow::Result<()> {
    for (i, provider) in providers.iter().enumerate() {
        if providers[..i].iter().any(|p| p.name == provider.name) {
            bail!(
                "two sign-in providers are named {:?} (the file and a TANDEM_* shortcut, or \
                 the file twice)",
                provider.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oauth2::ClientSecret;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_file_of_every_kind_parses_with_defaults() {
        let env = |name: &str| (name == "ACME_SECRET").then(|| "from-env".to_owned());
        let providers = parse(
            r#"
            [[provider]]
            name = "google"
            kind = "google"
            client_id = "g-id"
            client_secret = "g-secret"

            [[provider]]
            name = "github"
            kind = "github"
            client_id = "gh-id"
            client_secret = "gh-secret"

            [[provider]]
            name = "acme"
            kind = "oidc"
            label = "Acme SSO"
            issuer = "https://sso.acme.example/realms/main"
            client_id = "tandem"
            client_secret_env = "ACME_SECRET"
            scopes = ["email"]
            "#,
            &env,
        )
        .unwrap();
        let names: Vec<_> = providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["google", "github", "acme"]);
        assert_eq!(providers[0].label, "Google");
        assert_eq!(
            providers[0].kind,
            Kind::Oidc {
                issuer: GOOGLE_ISSUER.into(),
                also_accepted: vec![GOOGLE_ISSUER_BARE.into()]
            }
        );
        assert_eq!(providers[0].scopes, ["openid", "email", "profile"]);
        assert_eq!(providers[1].kind, Kind::GitHub);
        assert_eq!(providers[1].scopes, ["read:user", "user:email"]);
        assert_eq!(providers[2].label, "Acme SSO");
        assert_eq!(providers[2].client_secret.secret(), "from-env");
        assert_eq!(
            providers[2].scopes,
            ["openid", "email"],
            "openid is always asked"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = ClientSecret::new("hunter2".into());
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        let cases = [
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"x\"",
                "client_secret",
            ),
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret_env = \"NOPE\"",
                "NOPE",
            ),
            (
                "name = \"a\"\nkind = \"oidc\"\nclient_id = \"x\"\nclient_secret = \"s\"",
                "issuer",
            ),
            (
                "name = \"A/b\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"s\"",
                "URL segment",
            ),
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"s\"\nissuer = \"https://x\"",
                "oidc",
            ),
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"s\"\nsecret = \"typo\"",
                "unknown field",
            ),
            (
                "name = \"a\"\nkind = \"oidc\"\nissuer = \"ftp://x\"\nclient_id = \"x\"\nclient_secret = \"s\"",
                "http(s)",
            ),
        ];
        for (entry, expected) in cases {
            let text = format!("[[provider]]\n{entry}\n");
            let err = format!("{:#}", parse(&text, &no_env).unwrap_err());
            assert!(err.contains(expected), "{entry:?}: {err}");
        }
    }

    #[test]
    fn names_are_unique() {
        let text = "[[provider]]\nname = \"a\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"s\"\n";
        let providers = parse(&format!("{text}{text}"), &no_env).unwrap();
        assert!(check_unique(&providers).is_err());
        assert!(check_unique(&providers[..1]).is_ok());
    }
}
