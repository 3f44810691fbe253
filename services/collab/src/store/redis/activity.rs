//! Activity in Redis: `user:{id}:opened` (notebook id → when) and the `last_editor` field of
//! the notebook's hash, which goes with it. An open of a deleted notebook is dropped when
//! [`ActivityStore::activity`] meets it.

use std::collections::HashMap;

use ::redis::AsyncCommands;
use async_trait::async_trait;

use super::{RedisStore, scripts};
use crate::store::{Activity, ActivityStore, StoreError};

#[async_trait]
impl ActivityStore for RedisStore {
    async fn note_opened(
        &self,
        user_id: &str,
        notebook_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let opened = self.keys.user_opened(user_id);
        let _: bool = scripts::IF_EXISTS
            .key(self.keys.notebook(notebook_id))
            .arg("HSET")
            .arg(&opened)
            .arg(notebook_id)
            .arg(at_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn note_edited(&self, notebook_id: &str, user_id: &str) -> Result<(), StoreError> {
        let key = self.keys.notebook(notebook_id);
        let _: bool = scripts::IF_EXISTS
            .key(&key)
            .arg("HSET")
            .arg(&key)
            .arg("last_editor")
            .arg(user_id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn activity(
        &self,
        user_id: &str,
        notebook_ids: &[String],
    ) -> Result<HashMap<String, Activity>, StoreError> {
        if notebook_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let opened: Vec<Option<i64>> = self
            .conn()
            .hmget(self.keys.user_opened(user_id), notebook_ids)
            .await?;
        let mut pipe = ::redis::pipe();
        for id in notebook_ids {
            pipe.cmd("HMGET")
                .arg(self.keys.notebook(id))
                .arg("owner_id")
                .arg("last_editor");
        }
        let notebooks: Vec<(Option<String>, Option<String>)> =
            pipe.query_async(&mut self.conn()).await?;
        let mut out = HashMap::new();
        let mut gone = Vec::new();
        for (i, id) in notebook_ids.iter().enumerate() {
            let opened_at_ms = opened.get(i).copied().flatten();
            let Some((Some(_owner), last_editor_id)) = notebooks.get(i).cloned() else {
                // Deleted: its open is dropped now that it is met.
                if opened_at_ms.is_some() {
                    gone.push(id.as_str());
                }
                continue;
            };
            let activity = Activity {
                opened_at_ms,
                last_editor_id,
            };
            if activity != Activity::default() {
                out.insert(id.clone(), activity);
            }
        }
        if !gone.is_empty() {
            let _: u64 = self
                .conn()
                .hdel(self.keys.user_opened(user_id), gone)
                .await?;
        }
        Ok(out)
    }
}
