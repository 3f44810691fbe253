//! GitHub: plain OAuth 2.0 (no ID token), so who signed in comes from its REST API: the
//! profile for the name, and the account's verified primary address for the email.

use serde::Deserialize;

/// Where the browser is sent to sign in.
pub const AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
/// Where codes are exchanged for tokens.
pub const TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
/// The REST API.
const API: &str = "https://api.github.com";

/// The signed-in GitHub account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login, such as `octocat`.
    pub login: String,
    /// The profile's name, if set.
    pub name: Option<String>,
    /// The verified primary email, if the account has one.
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// Reads the account behind `access_token`.
pub async fn account(http: &reqwest::Client, access_token: &str) -> anyhow::Result<Account> {
    let user: User = get(http, &format!("{API}/user"), access_token).await?;
    let emails: Vec<Email> = get(http, &format!("{API}/user/emails"), access_token).await?;
    Ok(Account {
        login: user.login,
        name: user.name.filter(|n| !n.trim().is_empty()),
        email: verified_primary(&emails),
    })
}

/// The primary address, if GitHub verified it. An unverified primary is not replaced by
/// another verified address: the primary is the one the person chose to be known by.
fn verified_primary(emails: &[Email]) -> Option<String> {
    emails
        .iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email.clone())
}

async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
) -> anyhow::Result<T> {
    let request = http
        .get(url)
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        // GitHub refuses API requests without a User-Agent.
        .header(reqwest::header::USER_AGENT, "tandem")
        .header("X-GitHub-Api-Version", "2022-11-28");
    super::oidc::send_json(request, url).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(email: &str, primary: bool, verified: bool) -> Email {
        Email {
            email: email.into(),
            primary,
            verified,
        }
    }

    #[test]
    fn only_a_verified_primary_address_counts() {
        let emails = [
            email("other@example.com", false, true),
            email("main@example.com", true, true),
        ];
        assert_eq!(
            verified_primary(&emails).as_deref(),
            Some("main@example.com")
        );
        let unverified = [
            email("other@example.com", false, true),
            email("main@example.com", true, false),
        ];
        assert_eq!(verified_primary(&unverified), None);
        assert_eq!(verified_primary(&[]), None);
    }
}
