//! One provider: the OAuth client for its endpoints, and who signed in according to it.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, EndpointNotSet, EndpointSet, ExtraTokenFields, RedirectUrl,
    RequestTokenError, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::settings::ProviderSettings;
use super::{email_refused, github, invalid_id_token, oauth_failed, oidc, unavailable};
use crate::auth::session;
use crate::error::ApiError;

#[derive(Debug)]
pub(super) struct Provider {
    pub(super) settings: ProviderSettings,
    /// The issuer, for OpenID Connect providers.
    pub(super) issuer: Option<oidc::Issuer>,
}
/// What the token endpoint answers: OAuth's fields and, for OpenID Connect, the ID token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenFields {}

pub(super) type Tokens = StandardTokenResponse<IdTokenFields, BasicTokenType>;

pub(super) type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    Tokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Who signed in, as the provider vouches.
pub(super) struct Identity {
    pub(super) email: String,
    pub(super) name: String,
}

impl Provider {
    pub(super) fn name(&self) -> &str {
        &self.settings.name
    }

    /// The OAuth client for this provider's endpoints (discovered now if need be).
    pub(super) async fn client(
        &self,
        http: &reqwest::Client,
        redirect: RedirectUrl,
    ) -> Result<OAuthClient, ApiError> {
        let (auth, token, auth_type) = match &self.issuer {
            Some(issuer) => {
                let metadata = issuer.metadata(http).await.map_err(|err| {
                    tracing::warn!(
                        provider = self.name(),
                        error = format!("{err:#}"),
                        "OpenID discovery failed"
                    );
                    unavailable(&self.settings.label)
                })?;
                // Client authentication by HTTP Basic unless the issuer only takes the secret
                // in the body (an absent list means Basic, per OpenID Connect Discovery).
                let methods = metadata.token_endpoint_auth_methods_supported.as_deref();
                let post_only = methods.is_some_and(|m| {
                    !m.iter().any(|m| m == "client_secret_basic")
                        && m.iter().any(|m| m == "client_secret_post")
                });
                let auth_type = if post_only {
                    AuthType::RequestBody
                } else {
                    AuthType::BasicAuth
                };
                (
                    AuthUrl::from_url(metadata.authorization_endpoint.clone()),
                    TokenUrl::from_url(metadata.token_endpoint.clone()),
                    auth_type,
                )
            }
            None => (
                AuthUrl::new(github::AUTHORIZE_URL.into()).map_err(ApiError::internal)?,
                TokenUrl::new(github::TOKEN_URL.into()).map_err(ApiError::internal)?,
                AuthType::RequestBody,
            ),
        };
        Ok(
            oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
                .set_client_secret(self.settings.client_secret.clone())
                .set_auth_uri(auth)
                .set_token_uri(token)
                .set_redirect_uri(redirect)
                .set_auth_type(auth_type),
        )
    }

    /// Who the tokens are for: a verified ID token (and the userinfo endpoint, when the ID
    /// token carries no email), or GitHub's API.
    pub(super) async fn identity(
        &self,
        http: &reqwest::Client,
        tokens: &Tokens,
        nonce: &str,
    ) -> Result<Identity, ApiError> {
        let label = &self.settings.label;
        let Some(issuer) = &self.issuer else {
            let account = github::account(http, tokens.access_token().secret())
                .await
                .map_err(|err| {
                    tracing::warn!(
                        provider = self.name(),
                        error = format!("{err:#}"),
                        "reading the GitHub account failed"
                    );
                    unavailable(label)
                })?;
            let email = account.email.ok_or_else(|| {
                email_refused(
                    "email_unverified",
                    "your GitHub account has no verified primary email; verify it at GitHub and sign \
                     in again"
                        .to_owned(),
                )
            })?;
            let name = account.name.unwrap_or(account.login);
            return Ok(Identity { email, name });
        };
        let id_token = tokens
            .extra_fields()
            .id_token
            .as_deref()
            .ok_or_else(|| invalid_id_token(label, "the token response has no ID token"))?;
        let mut claims = issuer
            .verify(http, id_token, &self.settings.client_id, nonce)
            .await
            .map_err(|err| match err {
                oidc::IdTokenError::KeysUnavailable(cause) => {
                    tracing::warn!(
                        provider = self.name(),
                        error = format!("{cause:#}"),
                        "fetching the issuer's keys failed"
                    );
                    unavailable(label)
                }
                err => {
                    tracing::warn!(provider = self.name(), reason = %err, "ID token refused");
                    invalid_id_token(label, &err.to_string())
                }
            })?;
        if claims.email.is_none() {
            self.add_userinfo(http, tokens, &mut claims).await?;
        }
        if claims.email_verified() == Some(false) {
            return Err(email_refused(
                "email_unverified",
                format!(
                    "{label} has not verified your email address; verify it there and sign in again"
                ),
            ));
        }
        let email = claims.email.filter(|e| session::valid_email(e)).ok_or_else(|| {
            email_refused(
                "email_required",
                format!("{label} did not share a valid email address; allow Tandem to see it and sign in again"),
            )
        })?;
        let name = claims
            .name
            .or(claims.preferred_username)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
        Ok(Identity { email, name })
    }

    /// Fills the email (and name) from the issuer's userinfo endpoint, which some issuers
    /// use instead of putting them in the ID token.
    async fn add_userinfo(
        &self,
        http: &reqwest::Client,
        tokens: &Tokens,
        claims: &mut oidc::Claims,
    ) -> Result<(), ApiError> {
        let Some(issuer) = &self.issuer else {
            return Ok(());
        };
        let label = &self.settings.label;
        let metadata = issuer
            .metadata(http)
            .await
            .map_err(|_| unavailable(label))?;
        let Some(endpoint) = &metadata.userinfo_endpoint else {
            return Ok(());
        };
        let info: oidc::Claims = async {
            let response = http
                .get(endpoint.clone())
                .bearer_auth(tokens.access_token().secret())
                .send()
                .await?
                .error_for_status()?;
            response.json().await
        }
        .await
        .map_err(|err| {
            tracing::warn!(provider = self.name(), error = %err, "userinfo request failed");
            unavailable(label)
        })?;
        // OpenID Connect Core §5.3.2: userinfo about anyone else must not be used.
        if info.sub != claims.sub {
            return Err(oauth_failed(format!(
                "{label}'s userinfo answer is about another user than its ID token"
            )));
        }
        claims.email = info.email;
        claims.email_verified = info.email_verified;
        claims.name = claims.name.take().or(info.name);
        Ok(())
    }
}

pub(super) fn exchange_error(
    provider: &Provider,
    err: RequestTokenError<oauth2::HttpClientError<reqwest::Error>, BasicErrorResponse>,
) -> ApiError {
    let label = &provider.settings.label;
    let refused = |error: &BasicErrorResponse| {
        let detail = error
            .error_description()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        oauth_failed(format!(
            "{label} did not accept the sign-in code ({}{detail}); start again",
            error.error()
        ))
    };
    match &err {
        RequestTokenError::ServerResponse(error) => {
            tracing::warn!(provider = provider.name(), error = %error.error(), "code exchange refused");
            refused(error)
        }
        RequestTokenError::Request(cause) => {
            tracing::warn!(provider = provider.name(), error = %cause, "code exchange failed");
            unavailable(label)
        }
        RequestTokenError::Parse(cause, body) => {
            // GitHub answers errors with 200 and an error body, which does not parse as
            // tokens.
            if let Ok(error) = serde_json::from_slice::<BasicErrorResponse>(body) {
                tracing::warn!(provider = provider.name(), error = %error.error(), "code exchange refused");
                return refused(&error);
            }
            tracing::warn!(provider = provider.name(), error = %cause, "unexpected token response");
            oauth_failed(format!(
                "{label} answered the code exchange unexpectedly; start again"
            ))
        }
        RequestTokenError::Other(cause) => {
            tracing::warn!(provider = provider.name(), error = %cause, "code exchange failed");
            oauth_failed(format!(
                "{label} answered the code exchange unexpectedly; start again"
            ))
        }
    }
}
