//! The Lua scripts of [`RedisStore`](super::RedisStore): the compare-and-set write and the
//! per-user index's operations. Each is one atomic step on one node. Each starts with `#!lua`,
//! so that Redis (7.0 and later) refuses, even on one server, a script that touches a key of
//! another hash slot than its declared keys: without the shebang such a script works until a
//! resharding puts the two slots on different nodes. Each checks its argument count before any
//! write, since a script is atomic but not transactional: writes before an error stay.
//!
//! Replies are integers or arrays, never error replies, for the outcomes the caller handles
//! (conflict, limit, existing key); error replies mean a bug (wrong arguments).

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind};

/// One call of a script: its `EVALSHA` command, built once with each key and argument copied
/// into it once (the crate's `ScriptInvocation` copies each into a list of its own first, then
/// again into a command each time it is sent).
pub(super) struct ScriptCall<'a> {
    script: &'a Script,
    evalsha: Cmd,
}

impl<'a> ScriptCall<'a> {
    pub(super) fn new(script: &'a Script, keys: &[&str], args: &[&[u8]]) -> Self {
        let hash = script.get_hash();
        let data = hash.len()
            + 24
            + keys.iter().map(|key| key.len()).sum::<usize>()
            + args.iter().map(|arg| arg.len()).sum::<usize>();
        let mut evalsha = Cmd::with_capacity(3 + keys.len() + args.len(), data);
        evalsha.arg("EVALSHA").arg(hash).arg(keys.len());
        for key in keys {
            evalsha.arg(*key);
        }
        for arg in args {
            evalsha.arg(*arg);
        }
        Self { script, evalsha }
    }

    /// Sends the call; when the server does not have the script cached (`NOSCRIPT`: a restart,
    /// a failover, `SCRIPT FLUSH`), loads it and sends the call again.
    pub(super) async fn send<T: FromRedisValue>(
        &self,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self.evalsha.query_async(connection).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(connection).await?;
                self.evalsha.query_async(connection).await
            }
            result => result,
        }
    }
}

/// The compare-and-set write.
///
/// `KEYS[1]` the session key; `ARGV[1]` the token the live record must begin with,
/// `ARGV[2]` the new record, `ARGV[3]` its `PXAT` in milliseconds, or `''` to end the record
/// now (its deadline has passed).
///
/// Reply: `1` saved; nil when no live record is there (never created: no resurrection); else
/// the live record itself, so the caller merges onto it without another read.
pub(super) static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua
if #KEYS ~= 1 or #ARGV ~= 3 then return redis.error_reply('ERR cas: 1 key, 3 arguments') end
local current = redis.call('GET', KEYS[1])
if not current then return false end
if string.sub(current, 1, #ARGV[1]) ~= ARGV[1] then return current end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
",
    )
});

/// Deletes a record if it still matches a token: a regenerated session's old record.
///
/// `KEYS[1]` the key; `ARGV[1]` the token. Reply: `1` deleted; nil when no live record is
/// there; else the live record (another request saved it: nothing is deleted).
pub(super) static DELETE_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua
if #KEYS ~= 1 or #ARGV ~= 1 then return redis.error_reply('ERR delete_if: 1 key, 1 argument') end
local current = redis.call('GET', KEYS[1])
if not current then return false end
if string.sub(current, 1, #ARGV[1]) ~= ARGV[1] then return current end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// Creates a logged-in session and indexes it, for log-in and regeneration.
///
/// `KEYS[1]` the new session's key (`P<member>`), `KEYS[2]` the index (`sess:idx:{T}`);
/// `ARGV`: 1 the record, 2 its `PXAT`, 3 its member, 4 its absolute deadline (the score,
/// ms), 5 now (ms), 6 the most sessions allowed (`0`: no limit), 7 the member prefix `P`,
/// 8 `evict` or `refuse`, 9 a member to retire in the same step (`''`: none), 10 the token
/// the retired member's record must still begin with, 11 the most members to visit (`B`,
/// [`MAX_MEMBERS_VISITED`](crate::store::MAX_MEMBERS_VISITED)).
///
/// Prunes members past their deadline and members whose key is gone, then counts (the retired
/// member aside), refuses or evicts the oldest deadlines, checks that the member to retire is
/// still there and unchanged (else says so, or hands its record back), writes with `SET NX`
/// (the only write that can fail goes first), retires, and sets the index's expiry to its latest score (plain
/// `PEXPIREAT`: with `GT` a key without expiry would never get one). Each step visits at most
/// `B` members, whatever the index's size or the limit: it prunes up to `B` past their
/// deadline, checks the oldest of the rest for a key that is gone (`B` in all), and evicts at
/// most `B`; what is left goes at the next call.
///
/// Reply: the evicted members (an array, maybe empty); `-1` refused by the limit; `-2` the
/// key exists; `-3` the member to retire is gone (ended meanwhile); a string: the live record
/// of the member to retire, which changed.
pub(super) static LOGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua
if #KEYS ~= 2 or #ARGV ~= 11 then return redis.error_reply('ERR login: 2 keys, 11 arguments') end
local index, prefix, retire, bound = KEYS[2], ARGV[7], ARGV[9], tonumber(ARGV[11])
local dead = redis.call('ZRANGE', index, '-inf', ARGV[5], 'BYSCORE', 'LIMIT', 0, bound)
if #dead > 0 then redis.call('ZREM', index, unpack(dead)) end
if #dead < bound then
  for _, m in ipairs(redis.call('ZRANGE', index, 0, bound - #dead - 1)) do
    if redis.call('EXISTS', prefix .. m) == 0 then redis.call('ZREM', index, m) end
  end
end
local max = tonumber(ARGV[6])
local n = redis.call('ZCARD', index)
if retire ~= '' and redis.call('ZSCORE', index, retire) then n = n - 1 end
if max > 0 and n >= max and ARGV[8] == 'refuse' then return -1 end
if retire ~= '' then
  local old = redis.call('GET', prefix .. retire)
  if not old then return -3 end
  if string.sub(old, 1, #ARGV[10]) ~= ARGV[10] then return old end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then return -2 end
if retire ~= '' then
  redis.call('DEL', prefix .. retire)
  redis.call('ZREM', index, retire)
end
local evicted = {}
while max > 0 and n >= max and #evicted < bound do
  local oldest = redis.call('ZPOPMIN', index)
  if #oldest == 0 then break end
  redis.call('DEL', prefix .. oldest[1])
  evicted[#evicted + 1] = oldest[1]
  n = n - 1
end
redis.call('ZADD', index, ARGV[4], ARGV[3])
local last = redis.call('ZRANGE', index, 0, 0, 'REV', 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
return evicted
",
    )
});

/// Lists a user's live sessions without sliding any expiry (`GET` and `PTTL`, never
/// `GETEX`), dropping dead members on the way.
///
/// `KEYS[1]` the index; `ARGV[1]` now (ms), `ARGV[2]` the member prefix, `ARGV[3]` the most
/// members to visit (`B`): it prunes at most `B` past their deadline and lists the newest `B`.
///
/// Reply: a flat array of `member, PTTL (ms), record` triples, oldest deadline first.
pub(super) static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua
if #KEYS ~= 1 or #ARGV ~= 3 then return redis.error_reply('ERR list: 1 key, 3 arguments') end
local bound = tonumber(ARGV[3])
local dead = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, bound)
if #dead > 0 then redis.call('ZREM', KEYS[1], unpack(dead)) end
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], -bound, -1)) do
  local key = ARGV[2] .. m
  local record = redis.call('GET', key)
  if record then
    out[#out + 1] = m
    out[#out + 1] = redis.call('PTTL', key)
    out[#out + 1] = record
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
",
    )
});

/// Ends every session of a user but one.
///
/// `KEYS[1]` the index; `ARGV[1]` the member prefix, `ARGV[2]` the member to keep (`''`:
/// none), `ARGV[3]` the most members to visit (`B`): the `B` oldest. An index left empty
/// disappears with its last member.
///
/// Reply: how many live sessions ended, and how many members are left besides the one kept
/// (the caller calls again while some are).
pub(super) static END_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua
if #KEYS ~= 1 or #ARGV ~= 3 then return redis.error_reply('ERR end_all: 1 key, 3 arguments') end
local ended, keep = 0, ARGV[2]
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do
  if m ~= keep then
    ended = ended + redis.call('DEL', ARGV[1] .. m)
    redis.call('ZREM', KEYS[1], m)
  end
end
local left = redis.call('ZCARD', KEYS[1])
if keep ~= '' and redis.call('ZSCORE', KEYS[1], keep) then left = left - 1 end
return {ended, left}
",
    )
});
