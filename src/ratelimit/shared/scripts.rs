//! The server-side Lua scripts: GCRA on one Redis key per limit, run
//! atomically by Redis, on Redis's own clock (`TIME`), so instances with
//! skewed clocks still share one timeline.
//!
//! State: the theoretical arrival time (TAT, microseconds since the epoch,
//! as a decimal string) under the limit's key, expiring once the limit is
//! fully replenished (an absent key is an idle limit).

/// Takes up to `ARGV[3]` calls at once (a lease) from the cell `KEYS[1]`
/// with interval `ARGV[1]` (microseconds, may be fractional) and burst
/// `ARGV[2]`. Grants as many as the cell allows now, at most the asked
/// number.
///
/// Returns `{granted, remaining, reset_us}`: `granted` ≥ 1 with the calls
/// still allowed after it and the microseconds until the limit is fully
/// replenished, or `{0, 0, retry_us}` with the microseconds until one
/// call is allowed again.
pub(super) const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local capacity = interval * burst
local k = math.floor((capacity - (tat - now)) / interval + 1e-9)
if k > want then k = want end
if k < 1 then
  return {0, 0, math.ceil(tat + interval - now - capacity)}
end
tat = tat + k * interval
local ahead = tat - now
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil(ahead / 1000) + 1000)
local remaining = math.floor((capacity - ahead) / interval + 1e-9)
if remaining < 0 then remaining = 0 end
return {k, remaining, math.ceil(ahead)}
";

/// Gives back `ARGV[2]` unused calls of a lease to the cell `KEYS[1]`
/// with interval `ARGV[1]` (microseconds): the TAT moves back, never
/// before now. Returns 1.
pub(super) const GIVE_BACK: &str = r"
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat == 0 then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
tat = tat - tonumber(ARGV[2]) * tonumber(ARGV[1])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return 1
";
