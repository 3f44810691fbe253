//! Comment threads in Redis: a list of thread ids per notebook, a hash per thread (cell,
//! anchor, author, resolution) and a list of comments (JSON) per thread, all keyed by the
//! notebook, so a thread of another notebook is simply absent. Authors are stored by id and
//! filled in from the users on read.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::Value;

use super::{RedisStore, scripts};
use crate::store::comments::{Anchor, CommentRecord, ThreadRecord};
use crate::store::{CommentStore, StoreError, User};

#[async_trait]
impl CommentStore for RedisStore {
    async fn threads(&self, notebook_id: &str) -> Result<Vec<ThreadRecord>, StoreError> {
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.threads(notebook_id))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?;
        let mut threads = self.read_threads(notebook_id, &ids).await?;
        // The list is in creation order; a thread created with an older timestamp (clocks of
        // two nodes) still sorts by it, as SQLite's `ORDER BY created_at, rowid` does.
        threads.sort_by_key(|t| t.created_at_ms);
        Ok(threads)
    }

    async fn thread(
        &self,
        notebook_id: &str,
        thread_id: &str,
    ) -> Result<Option<ThreadRecord>, StoreError> {
        Ok(self
            .read_threads(notebook_id, &[thread_id.to_owned()])
            .await?
            .pop())
    }

    async fn create_thread(&self, thread: &ThreadRecord) -> Result<(), StoreError> {
        let nb = &thread.notebook_id;
        let mut fields: Vec<(&str, Vec<u8>)> = vec![
            ("cell_id", thread.cell_id.clone().into_bytes()),
            ("author_id", thread.author.id.clone().into_bytes()),
            ("created_at", thread.created_at_ms.to_string().into_bytes()),
        ];
        if let Some(anchor) = &thread.anchor {
            fields.extend(anchor_fields(anchor));
        }
        if let Some((user, at)) = &thread.resolved {
            fields.push(("resolved_by", user.id.clone().into_bytes()));
            fields.push(("resolved_at", at.to_string().into_bytes()));
        }
        let mut invocation = scripts::CREATE_THREAD.prepare_invoke();
        invocation
            .key(self.keys.notebook(nb))
            .key(self.keys.threads(nb))
            .key(self.keys.thread(nb, &thread.id))
            .key(self.keys.comments(nb, &thread.id))
            .arg(&thread.id)
            .arg(fields.len() * 2);
        for (name, value) in &fields {
            invocation.arg(*name).arg(value.as_slice());
        }
        for comment in &thread.comments {
            invocation.arg(comment_json(comment));
        }
        let created: bool = invocation.invoke_async(&mut self.conn()).await?;
        if created {
            Ok(())
        } else {
            Err(StoreError::NotFound("notebook"))
        }
    }

    async fn add_comment(
        &self,
        notebook_id: &str,
        thread_id: &str,
        comment: &CommentRecord,
    ) -> Result<bool, StoreError> {
        let added: bool = scripts::IF_EXISTS
            .key(self.keys.thread(notebook_id, thread_id))
            .arg("RPUSH")
            .arg(self.keys.comments(notebook_id, thread_id))
            .arg(comment_json(comment))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(added)
    }

    async fn set_resolved(
        &self,
        notebook_id: &str,
        thread_id: &str,
        resolved: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        let key = self.keys.thread(notebook_id, thread_id);
        let mut invocation = scripts::IF_EXISTS.key(&key);
        match resolved {
            Some((by, at)) => invocation
                .arg("HSET")
                .arg(&key)
                .arg("resolved_by")
                .arg(by)
                .arg("resolved_at")
                .arg(at),
            None => invocation
                .arg("HDEL")
                .arg(&key)
                .arg("resolved_by")
                .arg("resolved_at"),
        };
        Ok(invocation.invoke_async(&mut self.conn()).await?)
    }

    async fn set_anchor(
        &self,
        notebook_id: &str,
        thread_id: &str,
        anchor: &Anchor,
    ) -> Result<bool, StoreError> {
        let key = self.keys.thread(notebook_id, thread_id);
        let mut invocation = scripts::IF_EXISTS.key(&key);
        invocation.arg("HSET").arg(&key);
        for (name, value) in anchor_fields(anchor) {
            invocation.arg(name).arg(value);
        }
        Ok(invocation.invoke_async(&mut self.conn()).await?)
    }

    async fn delete_thread(&self, notebook_id: &str, thread_id: &str) -> Result<bool, StoreError> {
        let existed: bool = scripts::DELETE_THREAD
            .key(self.keys.threads(notebook_id))
            .key(self.keys.thread(notebook_id, thread_id))
            .key(self.keys.comments(notebook_id, thread_id))
            .arg(thread_id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(existed)
    }

    async fn delete_comment(
        &self,
        notebook_id: &str,
        thread_id: &str,
        comment_id: &str,
    ) -> Result<bool, StoreError> {
        let existed: bool = scripts::DELETE_COMMENT
            .key(self.keys.thread(notebook_id, thread_id))
            .key(self.keys.comments(notebook_id, thread_id))
            .arg(comment_id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(existed)
    }
}

impl RedisStore {
    /// The threads with these ids that exist, in the given order, authors filled in.
    async fn read_threads(
        &self,
        notebook_id: &str,
        ids: &[String],
    ) -> Result<Vec<ThreadRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys.thread(notebook_id, id));
            pipe.cmd("LRANGE")
                .arg(self.keys.comments(notebook_id, id))
                .arg(0)
                .arg(-1);
        }
        let rows: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
        let mut raw = Vec::new();
        let mut rows = rows.into_iter();
        for id in ids {
            let (Some(hash), Some(comments)) = (rows.next(), rows.next()) else {
                break;
            };
            let key = self.keys.thread(notebook_id, id);
            let corrupt = |reason: String| StoreError::Corrupt {
                key: key.clone(),
                reason,
            };
            let hash: HashMap<String, Vec<u8>> =
                redis::from_redis_value(hash).map_err(|e| corrupt(e.to_string()))?;
            if hash.is_empty() {
                continue;
            }
            let comments: Vec<String> =
                redis::from_redis_value(comments).map_err(|e| corrupt(e.to_string()))?;
            let comments = comments
                .iter()
                .map(|c| parse_comment(c).ok_or_else(|| corrupt(format!("bad comment {c}"))))
                .collect::<Result<Vec<_>, _>>()?;
            raw.push((id.clone(), hash, comments, key));
        }
        let mut author_ids: Vec<String> = Vec::new();
        for (_, hash, comments, _) in &raw {
            author_ids.extend(text(hash, "author_id"));
            author_ids.extend(text(hash, "resolved_by"));
            author_ids.extend(comments.iter().map(|(author, _)| author.clone()));
        }
        let users = self.users(author_ids.iter().map(String::as_str)).await?;
        let user = |id: &str| {
            users.get(id).cloned().unwrap_or_else(|| User {
                id: id.to_owned(),
                email: String::new(),
                name: String::new(),
            })
        };
        let mut threads = Vec::with_capacity(raw.len());
        for (id, hash, comments, key) in raw {
            let number = |name: &str| text(&hash, name).and_then(|v| v.parse::<i64>().ok());
            let corrupt = |name: &str| StoreError::Corrupt {
                key: key.clone(),
                reason: format!("missing {name}"),
            };
            let anchor = hash.get("anchor_start").map(|start| Anchor {
                start: start.clone(),
                end: hash.get("anchor_end").cloned().unwrap_or_default(),
                from: number("anchor_from").unwrap_or_default() as u32,
                to: number("anchor_to").unwrap_or_default() as u32,
                quote: text(&hash, "anchor_quote").unwrap_or_default(),
            });
            let resolved = text(&hash, "resolved_by")
                .map(|by| (user(&by), number("resolved_at").unwrap_or_default()));
            let mut comments: Vec<CommentRecord> = comments
                .into_iter()
                .map(|(author, mut comment)| {
                    comment.author = user(&author);
                    comment
                })
                .collect();
            comments.sort_by_key(|c| c.created_at_ms);
            threads.push(ThreadRecord {
                id,
                notebook_id: notebook_id.to_owned(),
                cell_id: text(&hash, "cell_id").ok_or_else(|| corrupt("cell_id"))?,
                anchor,
                author: user(&text(&hash, "author_id").ok_or_else(|| corrupt("author_id"))?),
                created_at_ms: number("created_at").ok_or_else(|| corrupt("created_at"))?,
                resolved,
                comments,
            });
        }
        Ok(threads)
    }
}

fn text(hash: &HashMap<String, Vec<u8>>, name: &str) -> Option<String> {
    hash.get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn anchor_fields(anchor: &Anchor) -> [(&'static str, Vec<u8>); 5] {
    [
        ("anchor_start", anchor.start.clone()),
        ("anchor_end", anchor.end.clone()),
        ("anchor_from", anchor.from.to_string().into_bytes()),
        ("anchor_to", anchor.to.to_string().into_bytes()),
        ("anchor_quote", anchor.quote.clone().into_bytes()),
    ]
}

fn comment_json(comment: &CommentRecord) -> String {
    serde_json::json!({
        "id": comment.id,
        "author_id": comment.author.id,
        "text": comment.text,
        "created_at": comment.created_at_ms,
    })
    .to_string()
}

/// A stored comment and its author's id (the author is filled in by the caller).
fn parse_comment(json: &str) -> Option<(String, CommentRecord)> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let author = value["author_id"].as_str()?.to_owned();
    let comment = CommentRecord {
        id: value["id"].as_str()?.to_owned(),
        author: User {
            id: author.clone(),
            email: String::new(),
            name: String::new(),
        },
        text: value["text"].as_str()?.to_owned(),
        created_at_ms: value["created_at"].as_i64()?,
    };
    Some((author, comment))
}
