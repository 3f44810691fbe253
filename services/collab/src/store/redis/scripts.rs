//! The Lua scripts: each runs alone in Redis, so what it changes changes together. Key names
//! built here from the prefix (`ARGV[1]` where passed) mirror [`super::Keys`].

use std::sync::LazyLock;

use redis::Script;

/// `KEYS[1]` the email's key; `ARGV`: prefix, id for a new user, email, name, now.
/// Returns `{id, email, name}` of the existing or new user.
pub(super) static UPSERT_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local id = redis.call('GET', KEYS[1])
if not id then
  id = ARGV[2]
  redis.call('HSET', ARGV[1] .. ':user:' .. id, 'email', ARGV[3], 'name', ARGV[4],
    'created_at', ARGV[5])
  redis.call('SET', KEYS[1], id)
end
local user = redis.call('HMGET', ARGV[1] .. ':user:' .. id, 'email', 'name')
return {id, user[1], user[2]}
",
    )
});

/// `KEYS[1]` must exist; then runs the command in `ARGV`. Returns 1 if it ran.
pub(super) static IF_EXISTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call(unpack(ARGV))
return 1
",
    )
});

/// `ARGV`: prefix, notebook id, general access, link role, editors may run (`1`/`0`), then
/// email and role pairs. Returns 0 if the notebook does not exist.
pub(super) static SET_SHARING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, id = ARGV[1], ARGV[2]
local nb = p .. ':notebook:' .. id
if redis.call('EXISTS', nb) == 0 then return 0 end
redis.call('HSET', nb, 'general_access', ARGV[3], 'link_role', ARGV[4],
  'editors_may_run', ARGV[5])
local grants = nb .. ':grants'
for _, email in ipairs(redis.call('HKEYS', grants)) do
  redis.call('SREM', p .. ':email:' .. email .. ':shared', id)
end
redis.call('DEL', grants)
for i = 6, #ARGV, 2 do
  redis.call('HSET', grants, ARGV[i], ARGV[i + 1])
  redis.call('SADD', p .. ':email:' .. ARGV[i] .. ':shared', id)
end
return 1
",
    )
});

/// `ARGV`: prefix, notebook id, new owner id, new owner email, previous owner email, the
/// previous owner's new role. Returns 0 if the notebook does not exist.
pub(super) static TRANSFER_OWNERSHIP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, id = ARGV[1], ARGV[2]
local nb = p .. ':notebook:' .. id
local old = redis.call('HGET', nb, 'owner_id')
if not old then return 0 end
redis.call('HSET', nb, 'owner_id', ARGV[3])
redis.call('SREM', p .. ':user:' .. old .. ':notebooks', id)
redis.call('SADD', p .. ':user:' .. ARGV[3] .. ':notebooks', id)
local grants = nb .. ':grants'
redis.call('HDEL', grants, ARGV[4])
redis.call('SREM', p .. ':email:' .. ARGV[4] .. ':shared', id)
redis.call('HSET', grants, ARGV[5], ARGV[6])
redis.call('SADD', p .. ':email:' .. ARGV[5] .. ':shared', id)
return 1
",
    )
});

/// `ARGV`: prefix, notebook id. Deletes the notebook with its grants, comments, versions and
/// document.
/// Returns whether it existed.
pub(super) static DELETE_NOTEBOOK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, id = ARGV[1], ARGV[2]
local nb = p .. ':notebook:' .. id
local owner = redis.call('HGET', nb, 'owner_id')
if not owner then return 0 end
redis.call('SREM', p .. ':user:' .. owner .. ':notebooks', id)
for _, email in ipairs(redis.call('HKEYS', nb .. ':grants')) do
  redis.call('SREM', p .. ':email:' .. email .. ':shared', id)
end
for _, t in ipairs(redis.call('LRANGE', nb .. ':threads', 0, -1)) do
  local thread = p .. ':thread:' .. id .. ':' .. t
  redis.call('DEL', thread, thread .. ':comments')
end
for _, v in ipairs(redis.call('LRANGE', nb .. ':versions', 0, -1)) do
  redis.call('DEL', p .. ':version:' .. id .. ':' .. v)
end
local doc = p .. ':doc:' .. id
redis.call('DEL', nb, nb .. ':grants', nb .. ':threads', nb .. ':versions', doc .. ':snapshot', doc .. ':updates',
  doc .. ':compacting')
return 1
",
    )
});

/// `KEYS`: notebook, update stream, snapshot; `ARGV`: now, node id, then the updates.
/// Returns the last entry's id, or nil if the notebook does not exist. A stream that is gone
/// while a snapshot covers a seq continues numbering after it.
pub(super) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local id = '0-*'
if redis.call('EXISTS', KEYS[2]) == 0 then
  local covered = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
  if covered > 0 then id = '0-' .. string.format('%d', covered + 1) end
end
local last
for i = 3, #ARGV do
  last = redis.call('XADD', KEYS[2], id, 'u', ARGV[i], 'n', ARGV[2])
  id = '0-*'
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
return last
",
    )
});

/// `KEYS`: notebook, snapshot, update stream; `ARGV`: the snapshot, the seq it covers, the
/// first entry id to keep. Stores the snapshot and trims what it covers, unless a snapshot
/// covering more is already there. Returns whether it was stored.
pub(super) static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local covered = redis.call('HGET', KEYS[2], 'seq')
if covered and tonumber(covered) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'seq', ARGV[2])
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3])
return 1
",
    )
});

/// `KEYS[1]` a lease; `ARGV[1]` its holder. Deletes the lease only if still held by them.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// `KEYS`: the session, the user's session set; `ARGV`: hash, user id, CSRF token, created,
/// expires (ms), prefix. Also prunes the set of sessions that have expired.
pub(super) static INSERT_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'csrf_token', ARGV[3], 'created_at', ARGV[4],
  'expires_at', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
for _, h in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[6] .. ':session:' .. h) == 0 then
    redis.call('SREM', KEYS[2], h)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SADD', KEYS[2], ARGV[1]) end
return 1
",
    )
});

/// `KEYS[1]` the session; `ARGV`: prefix, hash. Returns whether it existed.
pub(super) static DELETE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local user = redis.call('HGET', KEYS[1], 'user_id')
if not user then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[1] .. ':user:' .. user .. ':sessions', ARGV[2])
return 1
",
    )
});

/// `KEYS[1]` the user's session set; `ARGV[1]` prefix. Returns how many sessions ended.
pub(super) static DELETE_USER_SESSIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. ':session:' .. h)
end
redis.call('DEL', KEYS[1])
return n
",
    )
});

/// `KEYS`: notebook, its thread list, the thread, its comment list; `ARGV`: thread id, number
/// of hash arguments, the thread's field/value pairs, then its comments (JSON). Returns 0 if
/// the notebook does not exist.
pub(super) static CREATE_THREAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[2])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HSET', KEYS[3], unpack(ARGV, 3, 2 + n))
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
for i = 3 + n, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
return 1
",
    )
});

/// `KEYS`: the notebook's thread list, the thread, its comments; `ARGV[1]` the thread id.
/// Returns whether the thread existed.
pub(super) static DELETE_THREAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('DEL', KEYS[2]) == 0 then return 0 end
redis.call('DEL', KEYS[3])
redis.call('LREM', KEYS[1], 0, ARGV[1])
return 1
",
    )
});

/// `KEYS`: the thread, its comments; `ARGV[1]` the comment id. Returns whether it existed.
pub(super) static DELETE_COMMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, c in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if cjson.decode(c).id == ARGV[1] then
    redis.call('LREM', KEYS[2], 1, c)
    return 1
  end
end
return 0
",
    )
});
