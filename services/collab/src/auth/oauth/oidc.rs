//! OpenID Connect: the issuer's discovery document and signing keys, fetched when first
//! needed and cached, and the checks an ID token must pass before Tandem believes it.
//!
//! Discovery is tried once at startup, but an issuer that is down then does not stop the
//! server: every sign-in that finds nothing cached tries again. The key set is fetched again
//! when an ID token names a key id it does not hold (the issuer rotated its keys), at most
//! once per ten seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// How long a discovery document is trusted before it is fetched again (issuers change
/// endpoints rarely; a failed refresh keeps the old one).
const METADATA_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest time between two key-set fetches triggered by an unknown key id, so a burst
/// of bad tokens cannot make Tandem hammer the issuer.
const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(10);

/// The signature algorithms accepted on ID tokens: the asymmetric ones. HMAC (keyed with the
/// client secret) and `none` are refused.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The parts of an issuer's discovery document Tandem uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The issuer identifier; must equal the configured one.
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: Url,
    /// Where codes are exchanged for tokens.
    pub token_endpoint: Url,
    /// The signing keys.
    pub jwks_uri: Url,
    /// Claims about the user, for an access token (used when the ID token has no email).
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    /// How the token endpoint authenticates clients (absent: `client_secret_basic`).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// Why an ID token was refused. The message names the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// The signature does not verify with the issuer's key.
    #[error("its signature does not verify with the issuer's key")]
    Signature,
    /// No key of the issuer has the token's key id, even after fetching the keys again.
    #[error("it is signed with a key the issuer does not publish (kid {0:?})")]
    UnknownKey(String),
    /// Signed with an algorithm Tandem does not accept, or one that does not fit the key.
    #[error("it is signed with an algorithm that is not accepted ({0})")]
    Algorithm(String),
    /// `iss` is not the issuer.
    #[error("its issuer (iss) is not {0}")]
    Issuer(String),
    /// `aud` (or `azp`) is not this client.
    #[error("its audience (aud) is not this client")]
    Audience,
    /// `exp` has passed.
    #[error("it has expired (exp is in the past)")]
    Expired,
    /// `iat` or `nbf` is in the future.
    #[error("it is not valid yet (iat or nbf is in the future)")]
    NotYetValid,
    /// `nonce` is not the one this sign-in sent.
    #[error("its nonce is not the one this sign-in sent (a replayed token?)")]
    Nonce,
    /// Not a well-formed JWT, or a required claim is missing or malformed.
    #[error("it is malformed: {0}")]
    Malformed(String),
    /// The issuer's keys could not be fetched.
    #[error("the issuer's signing keys cannot be fetched")]
    KeysUnavailable(#[source] anyhow::Error),
}

/// The claims of a verified ID token (or of the userinfo endpoint) that Tandem uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    /// The issuer.
    #[serde(default)]
    pub iss: String,
    /// The user's id at the issuer.
    pub sub: String,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the issuer verified the address: a boolean, or a string from some issuers.
    #[serde(default)]
    pub email_verified: Option<serde_json::Value>,
    /// Full name.
    #[serde(default)]
    pub name: Option<String>,
    /// Short name, for when there is no full name.
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// The nonce the authorization request sent.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Issued-at time, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: Option<i64>,
    /// The audience: one client id or several.
    #[serde(default)]
    pub aud: Option<serde_json::Value>,
    /// The authorized party, when the audience has several clients.
    #[serde(default)]
    pub azp: Option<String>,
}

impl Claims {
    /// `Some(false)` when the issuer says it did not verify the address, `Some(true)` when it
    /// says it did, `None` when it says nothing.
    pub fn email_verified(&self) -> Option<bool> {
        match self.email_verified.as_ref()? {
            serde_json::Value::Bool(b) => Some(*b),
            serde_json::Value::String(s) => Some(s.eq_ignore_ascii_case("true")),
            _ => Some(false),
        }
    }
}

#[derive(Default)]
struct Cached {
    metadata: Option<(Arc<Metadata>, Instant)>,
    keys: Option<Arc<Vec<Jwk>>>,
    keys_fetched: Option<Instant>,
}

/// One OpenID Connect issuer: its identifier and what was learnt from it.
pub struct Issuer {
    issuer: String,
    also_accepted: Vec<String>,
    cache: Mutex<Cached>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer nothing is known of yet.
    pub fn new(issuer: String, also_accepted: Vec<String>) -> Self {
        Self {
            issuer,
            also_accepted,
            cache: Mutex::default(),
        }
    }

    /// The issuer identifier, as configured.
    pub fn id(&self) -> &str {
        &self.issuer
    }

    /// Whether `iss` names this issuer.
    pub fn accepts(&self, iss: &str) -> bool {
        same_issuer(iss, &self.issuer) || self.also_accepted.iter().any(|a| a == iss)
    }

    /// The discovery document, from the cache or fetched now.
    pub async fn metadata(&self, http: &reqwest::Client) -> anyhow::Result<Arc<Metadata>> {
        // Held across the fetch: concurrent sign-ins wait for one fetch instead of each
        // making their own.
        let mut cache = self.cache.lock().await;
        if let Some((metadata, fetched)) = &cache.metadata
            && fetched.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        match self.discover(http).await {
            Ok(metadata) => {
                let metadata = Arc::new(metadata);
                cache.metadata = Some((metadata.clone(), Instant::now()));
                Ok(metadata)
            }
            Err(err) => match &cache.metadata {
                Some((stale, _)) => {
                    tracing::warn!(issuer = %self.issuer, error = format!("{err:#}"), "refreshing OpenID discovery failed; keeping the old document");
                    Ok(stale.clone())
                }
                None => Err(err),
            },
        }
    }

    async fn discover(&self, http: &reqwest::Client) -> anyhow::Result<Metadata> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let metadata: Metadata = get_json(http, &url).await?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched
        // for, or a look-alike could hand out another issuer's endpoints.
        if !same_issuer(&metadata.issuer, &self.issuer) {
            bail!(
                "{url} names the issuer {:?}, not {:?}",
                metadata.issuer,
                self.issuer
            );
        }
        // An https issuer whose endpoints are plain http would send codes, secrets and tokens
        // in the clear.
        let https = self.issuer.starts_with("https://");
        let endpoints = [
            Some(&metadata.authorization_endpoint),
            Some(&metadata.token_endpoint),
            Some(&metadata.jwks_uri),
            metadata.userinfo_endpoint.as_ref(),
        ];
        if https
            && let Some(plain) = endpoints
                .into_iter()
                .flatten()
                .find(|url| url.scheme() != "https")
        {
            bail!("{url} names an endpoint that is not https: {plain}");
        }
        Ok(metadata)
    }

    /// The key set: the cached one, or fetched now when there is none or `refresh` is asked
    /// (and the cooldown allows).
    async fn keys(&self, http: &reqwest::Client, refresh: bool) -> anyhow::Result<Arc<Vec<Jwk>>> {
        let metadata = self.metadata(http).await?;
        let mut cache = self.cache.lock().await;
        let cooling = cache
            .keys_fetched
            .is_some_and(|at| at.elapsed() < JWKS_REFETCH_COOLDOWN);
        if let Some(keys) = &cache.keys
            && (!refresh || cooling)
        {
            return Ok(keys.clone());
        }
        let set: RawJwkSet = get_json(http, metadata.jwks_uri.as_str()).await?;
        // A key of a type this library cannot read is skipped, not fatal: issuers publish
        // encryption keys and new key types beside their signing keys.
        let keys: Vec<Jwk> = set
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value(key).ok())
            .collect();
        tracing::debug!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's signing keys");
        let keys = Arc::new(keys);
        cache.keys = Some(keys.clone());
        cache.keys_fetched = Some(Instant::now());
        Ok(keys)
    }

    /// Fetches the discovery document and keys ahead of the first sign-in.
    pub async fn warm_up(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        self.keys(http, false).await.map(|_| ())
    }

    /// Checks an ID token: signature with the issuer's key (by `kid`), issuer, audience
    /// (`client_id`), expiry and issue time with [`LEEWAY_SECS`] of skew, and `nonce`.
    pub async fn verify(
        &self,
        http: &reqwest::Client,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Claims, IdTokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| IdTokenError::Malformed(e.to_string()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(IdTokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.clone();
        let keys = self
            .keys(http, false)
            .await
            .map_err(IdTokenError::KeysUnavailable)?;
        let key = match pick_key(&keys, kid.as_deref(), header.alg) {
            Some(key) => key,
            None => {
                // Perhaps the issuer rotated its keys since they were fetched.
                let keys = self
                    .keys(http, true)
                    .await
                    .map_err(IdTokenError::KeysUnavailable)?;
                pick_key(&keys, kid.as_deref(), header.alg)
                    .ok_or_else(|| IdTokenError::UnknownKey(kid.unwrap_or_default()))?
            }
        };
        let key =
            DecodingKey::from_jwk(&key).map_err(|e| IdTokenError::Malformed(e.to_string()))?;

        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // The issuer is compared below, so Google's two spellings can both pass.
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(from_jwt)?;
        let claims = data.claims;

        if !self.accepts(&claims.iss) {
            return Err(IdTokenError::Issuer(self.issuer.clone()));
        }
        // OpenID Connect Core §3.1.3.7: with several audiences, the authorized party must be
        // this client.
        if let Some(serde_json::Value::Array(aud)) = &claims.aud
            && aud.len() > 1
            && claims.azp.as_deref() != Some(client_id)
        {
            return Err(IdTokenError::Audience);
        }
        let now = jsonwebtoken::get_current_timestamp() as i64;
        match claims.iat {
            None => return Err(IdTokenError::Malformed("no iat".into())),
            Some(iat) if iat > now + LEEWAY_SECS as i64 => return Err(IdTokenError::NotYetValid),
            Some(_) => {}
        }
        // Compared as hashes, so the comparison's timing says nothing about the nonce.
        let sent = crate::ids::token_hash(nonce);
        let got = crate::ids::token_hash(claims.nonce.as_deref().unwrap_or_default());
        if nonce.is_empty() || sent != got {
            return Err(IdTokenError::Nonce);
        }
        Ok(claims)
    }
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// The key for a token: the one with its `kid`, or (without a `kid`) the only signing key of
/// the right type. A key that declares an algorithm must declare the token's.
fn pick_key(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    let fits = |key: &&Jwk| {
        let family_fits = DecodingKey::from_jwk(key).is_ok_and(|k| k.family() == alg.family());
        let alg_fits = key.common.key_algorithm.is_none_or(|declared| {
            declared
                .to_string()
                .parse::<Algorithm>()
                .is_ok_and(|a| a == alg)
        });
        let for_signing = !matches!(
            key.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        );
        family_fits && alg_fits && for_signing
    };
    match kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .find(fits)
            .cloned(),
        None => {
            let mut candidates = keys.iter().filter(fits);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        }
    }
}

fn from_jwt(err: jsonwebtoken::errors::Error) -> IdTokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match err.kind() {
        K::InvalidSignature => IdTokenError::Signature,
        K::InvalidAudience => IdTokenError::Audience,
        K::ExpiredSignature => IdTokenError::Expired,
        K::ImmatureSignature => IdTokenError::NotYetValid,
        K::InvalidAlgorithm | K::MissingAlgorithm => IdTokenError::Algorithm(err.to_string()),
        K::MissingRequiredClaim(claim) => IdTokenError::Malformed(format!("no {claim}")),
        _ => IdTokenError::Malformed(err.to_string()),
    }
}

/// Issuer identifiers compare exactly, except that a trailing `/` on either is ignored
/// (configurations and documents disagree about it more often than issuers do).
fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// GETs `url` and parses its JSON body, failing on a status other than 2xx.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<T> {
    let request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    send_json(request, url).await
}

/// Sends a GET to `url` and parses its JSON body, failing on a status other than 2xx.
pub async fn send_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
) -> anyhow::Result<T> {
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    response
        .json()
        .await
        .with_context(|| format!("GET {url}: the body is not the expected JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_key(kid: &str, alg: Option<&str>) -> Jwk {
        let mut key = serde_json::json!({
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
            "e": "AQAB",
        });
        if let Some(alg) = alg {
            key["alg"] = alg.into();
        }
        serde_json::from_value(key).unwrap()
    }

    #[test]
    fn keys_are_picked_by_kid_and_algorithm() {
        let keys = vec![rsa_key("a", Some("RS256")), rsa_key("b", None)];
        assert_eq!(
            pick_key(&keys, Some("a"), Algorithm::RS256)
                .and_then(|k| k.common.key_id)
                .as_deref(),
            Some("a")
        );
        assert!(
            pick_key(&keys, Some("a"), Algorithm::RS384).is_none(),
            "declared alg wins"
        );
        assert!(
            pick_key(&keys, Some("b"), Algorithm::ES256).is_none(),
            "wrong key type"
        );
        assert!(pick_key(&keys, Some("c"), Algorithm::RS256).is_none());
        assert!(
            pick_key(&keys, None, Algorithm::RS256).is_none(),
            "ambiguous without kid"
        );
        assert!(pick_key(&keys[..1], None, Algorithm::RS256).is_some());
    }

    #[test]
    fn email_verified_reads_booleans_and_strings() {
        let claims = |v: serde_json::Value| Claims {
            email_verified: Some(v),
            ..Claims::default()
        };
        assert_eq!(claims(true.into()).email_verified(), Some(true));
        assert_eq!(claims(false.into()).email_verified(), Some(false));
        assert_eq!(claims("true".into()).email_verified(), Some(true));
        assert_eq!(claims("false".into()).email_verified(), Some(false));
        assert_eq!(Claims::default().email_verified(), None);
    }

    #[test]
    fn issuers_compare_up_to_a_trailing_slash() {
        let google = Issuer::new(
            "https://accounts.google.com".into(),
            vec!["accounts.google.com".into()],
        );
        assert!(google.accepts("https://accounts.google.com/"));
        assert!(google.accepts("accounts.google.com"));
        assert!(!google.accepts("https://accounts.google.com.evil.example"));
        assert!(!google.accepts("http://accounts.google.com"));
    }
}
