//! The Drive's routes ([`tandem_protocol::drive`]): a signed-in user's own persistent files.
//!
//! Every handler opens the caller's folder and works through [`crate::drive::UserDrive`] on
//! the blocking pool. Uploads stream to a temporary file beside the target and are renamed
//! into place only when complete and within the quota; a user's uploads run one at a time,
//! so two cannot both pass the quota check.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, routing};
use futures_util::StreamExt;
use tandem_protocol::drive::{
    DriveListing, DriveRename, DriveUsage, FILE_PATH, FOLDER_PATH, LIST_PATH, RENAME_PATH,
    USAGE_PATH,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ApiJson;
use crate::App;
use crate::auth::SignedIn;
use crate::drive::{DriveConfig, DriveError, DrivePath, UserDrive};
use crate::error::ApiError;

/// Bytes read from a file per chunk of a download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// The Drive's routes, merged into the API's router.
pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route(LIST_PATH, routing::get(list))
        .route(FILE_PATH, routing::get(download).put(upload).delete(remove))
        .route(FOLDER_PATH, routing::post(make_folder))
        .route(RENAME_PATH, routing::post(rename))
        .route(USAGE_PATH, routing::get(usage))
}

impl From<DriveError> for ApiError {
    fn from(error: DriveError) -> Self {
        let message = error.to_string();
        match error {
            DriveError::InvalidPath(_) => ApiError::bad_request("invalid_path", message),
            DriveError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            DriveError::AlreadyExists => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", message)
            }
            DriveError::NotAFolder => ApiError::new(StatusCode::CONFLICT, "not_a_folder", message),
            DriveError::IsAFolder => ApiError::new(StatusCode::CONFLICT, "is_a_folder", message),
            DriveError::QuotaExceeded { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded", message)
            }
            DriveError::Io(io) => ApiError::internal(io),
        }
    }
}

/// The `path` query parameter, checked. Absent means the root.
fn path_param(query: Option<&str>) -> Result<DrivePath, ApiError> {
    let raw = query
        .and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "path")
                .map(|(_, value)| value.into_owned())
        })
        .unwrap_or_default();
    Ok(DrivePath::parse(&raw)?)
}

/// Runs `work` on the caller's drive on the blocking pool.
async fn with_drive<T: Send + 'static>(
    config: &DriveConfig,
    user_id: &str,
    work: impl FnOnce(UserDrive) -> Result<T, DriveError> + Send + 'static,
) -> Result<T, ApiError> {
    let (config, user_id) = (config.clone(), user_id.to_owned());
    tokio::task::spawn_blocking(move || work(config.open(&user_id)?))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// `GET /api/drive?path=DIR`.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn list(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    RawQuery(query): RawQuery,
) -> Result<Json<DriveListing>, ApiError> {
    let path = path_param(query.as_deref())?;
    let shown = path.to_string();
    let entries = with_drive(&app.config.drive, &user.id, move |drive| drive.list(&path)).await?;
    Ok(Json(DriveListing {
        path: shown,
        entries,
    }))
}

/// `GET /api/drive/usage`.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn usage(
    State(app): State<App>,
    SignedIn(user): SignedIn,
) -> Result<Json<DriveUsage>, ApiError> {
    let used = with_drive(&app.config.drive, &user.id, |drive| drive.usage()).await?;
    Ok(Json(DriveUsage {
        used,
        quota: app.config.drive.quota_bytes(),
    }))
}

/// `GET /api/drive/file?path=FILE`: the bytes, streamed, as an attachment.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn download(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let path = path_param(query.as_deref())?;
    let name = path
        .split_last()
        .map(|(_, name)| name.to_owned())
        .unwrap_or_default();
    let (file, size) = with_drive(&app.config.drive, &user.id, move |drive| {
        drive.open_file(&path)
    })
    .await?;
    let file = tokio::fs::File::from_std(file);
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0; DOWNLOAD_CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok::<_, std::io::Error>(buffer), file))
            }
            Err(error) => Some((Err(error), file)),
        }
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&attachment(&name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok((headers, Body::from_stream(chunks)).into_response())
}

/// `Content-Disposition` for `name` (RFC 6266: an ASCII fallback and the UTF-8 name).
fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// `PUT /api/drive/file?path=FILE`: the raw body becomes the file.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn upload(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let path = path_param(query.as_deref())?;
    let config = app.config.drive.clone();
    let quota = config.quota_bytes();
    let lock = config.upload_lock(&user.id);
    let _one_at_a_time = lock.lock().await;
    let (drive, upload, used) = with_drive(&config, &user.id, move |drive| {
        let used = drive.usage()?;
        let upload = drive.begin_upload(&path)?;
        Ok((drive, upload, used))
    })
    .await?;
    // The file being replaced frees its bytes.
    let room = quota.saturating_sub(used.saturating_sub(upload.replaces));
    let over = || ApiError::from(DriveError::QuotaExceeded { used, quota });
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > room) {
        UserDrive::abort_upload(upload);
        return Err(over());
    }
    let mut file = tokio::fs::File::from_std(upload.file.try_clone().map_err(ApiError::internal)?);
    let mut written = 0u64;
    let mut stream = body.into_data_stream();
    let failure = loop {
        let chunk = match stream.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => {
                break Some(ApiError::bad_request(
                    "upload_failed",
                    format!("the upload did not arrive whole: {error}"),
                ));
            }
            None => break None,
        };
        written = written.saturating_add(chunk.len() as u64);
        if written > room {
            break Some(over());
        }
        if let Err(error) = file.write_all(&chunk).await {
            break Some(ApiError::internal(error));
        }
    };
    let flushed = file.flush().await;
    drop(file);
    if let Some(error) = failure {
        UserDrive::abort_upload(upload);
        return Err(error);
    }
    if let Err(error) = flushed {
        UserDrive::abort_upload(upload);
        return Err(ApiError::internal(error));
    }
    let replaced = upload.replaces > 0;
    let entry = tokio::task::spawn_blocking(move || drive.commit_upload(upload))
        .await
        .map_err(ApiError::internal)??;
    tracing::info!(bytes = written, "drive upload");
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(entry)).into_response())
}

/// `DELETE /api/drive/file?path=P`: a file, or a folder and everything in it.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn remove(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let path = path_param(query.as_deref())?;
    with_drive(&app.config.drive, &user.id, move |drive| {
        drive.remove(&path)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/drive/folder?path=DIR`.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn make_folder(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let path = path_param(query.as_deref())?;
    let entry = with_drive(&app.config.drive, &user.id, move |drive| {
        drive.make_folder(&path)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// `POST /api/drive/rename {"from", "to"}`.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn rename(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    ApiJson(body): ApiJson<DriveRename>,
) -> Result<impl IntoResponse, ApiError> {
    let from = DrivePath::parse(&body.from)?;
    let to = DrivePath::parse(&body.to)?;
    let entry = with_drive(&app.config.drive, &user.id, move |drive| {
        drive.rename(&from, &to)
    })
    .await?;
    Ok(Json(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_name_the_file_safely() {
        assert_eq!(
            attachment("a b\".txt"),
            "attachment; filename=\"a_b_.txt\"; filename*=UTF-8''a%20b%22.txt"
        );
        assert!(attachment("résumé.pdf").ends_with("r%C3%A9sum%C3%A9.pdf"));
    }
}
