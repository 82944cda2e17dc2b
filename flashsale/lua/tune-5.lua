--[[
  tune-5: ops change a live sale. Every field is optional ('' = unchanged);
  all are checked before any is written, so a refused tune changes nothing.

  KEYS[1] meta   KEYS[2] segments   KEYS[3] items   KEYS[4] itemset   KEYS[5] events

  ARGV[1] now_ms
  ARGV[2] status: 'open' | 'paused' | 'closed' | ''   (closed is final, and so is a
          passed end_at: a random drop's key is revealed then, so nothing may reopen it)
  ARGV[3] end_ms            ARGV[4] per_user_limit (lowering it keeps orders already held)
  ARGV[5] per_ip_limit (0 = off)   ARGV[6] timeout_ms (applies to new orders)
  ARGV[7] actor (who asked; recorded in the event)
  ARGV[8] '1' while the creation adds its own chunks (a passed end_at does not stop it)
  ARGV[9] tune key ('' = none): a bucketed drop's tune names its content, so that the
          same tune retried after it landed here (and failed in a later bucket) answers
          {1, version} writing nothing, closed or not, and the engine goes on to bring
          the other buckets level (sync_settings-1; docs/design.md, "Bucketed drops")
  ARGV[10...] serials to add: 'r', lo, hi | 'l', serial, ... | nothing

  Replies:
  {1, version}        tuned (or this very tune was the last one here: ARGV[9])
  {-1, ''}            sale_not_found
  {-4, ''}            sale_closed (a closed sale, or one past its end, cannot be tuned;
                      the creation's own chunks may still be added: ARGV[8])
  {-14, reason}       invalid change (end before start, kind mismatch, ...; a bucketed
                      list whose loading stopped midway, its last segment short of its
                      total: anything but a close, see load_serials-5)
  {-15, reason}       serials refused (overlap, duplicate)
]]
local rcall = redis.call
local meta_key, segments_key, items_key, itemset_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = ARGV[1]
local status, end_ms, user_limit, ip_limit, timeout_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

--@include segments
--@include hot

local m = rcall('HMGET', meta_key, 'status', 'start_ms', 'serials_kind', 'version', 'peak_user_limit',
  'end_ms', 'tune_key', 'segments', 'total')
if not m[1] then return {-1, ''} end
if ARGV[9] ~= '' and m[7] == ARGV[9] then return {1, tonumber(m[4])} end
if m[1] == 'closed' then return {-4, ''} end
if m[1] == 'loading' and ARGV[8] ~= '1' and status ~= 'closed' and m[8] then
  -- a bucketed list's creation loads each segment after bucket 0 exists
  -- (load_serials-5): stopped midway, its window reaches draws no segment holds yet
  local last = rcall('HMGET', segments_key, m[8] .. ':off', m[8] .. ':size')
  if last[1] and tonumber(last[1]) + tonumber(last[2]) < tonumber(m[9]) then
    return {-14, 'the sale is still loading its serials; a creation that stopped midway ' ..
      'leaves it so: close it and create the drop again under another id'}
  end
end
if ARGV[8] ~= '1' and tonumber(now) >= tonumber(m[6]) then return {-4, ''} end
if status ~= '' and status ~= 'open' and status ~= 'paused' and status ~= 'closed' then
  return {-14, 'unknown status ' .. status}
end
if end_ms ~= '' and tonumber(end_ms) <= tonumber(m[2]) then return {-14, 'end_at must be after start_at'} end
if user_limit ~= '' and tonumber(user_limit) < 1 then return {-14, 'per_user_limit must be at least 1'} end
if ip_limit ~= '' and tonumber(ip_limit) < 0 then return {-14, 'per_ip_limit must not be negative'} end
if timeout_ms ~= '' and tonumber(timeout_ms) < 1000 then return {-14, 'payment_timeout_s must be at least 1'} end
local spec = segment_spec(10)
if spec and spec.kind ~= m[3] then
  return {-14, 'add_serials must be of the kind the sale was created with (' .. m[3] .. ')'}
end

if spec then
  local added, why = append_segment(spec)
  if not added then return {-15, why} end
end
local changes = {}
local function set(field, value)
  if value ~= '' then
    changes[#changes + 1] = field
    changes[#changes + 1] = value
  end
end
set('status', status)
set('end_ms', end_ms)
set('per_user_limit', user_limit)
-- a lowered limit governs new purchases; orders already held are kept, so the
-- audit checks holdings against the highest limit the sale has ever had
if user_limit ~= '' and tonumber(user_limit) > tonumber(m[5]) then set('peak_user_limit', user_limit) end
set('per_ip_limit', ip_limit)
set('timeout_ms', timeout_ms)
local version = tonumber(m[4]) + 1
changes[#changes + 1] = 'version'
changes[#changes + 1] = version
changes[#changes + 1] = 'updated_ms'
changes[#changes + 1] = now
rcall('HSET', meta_key, unpack(changes))
if ARGV[9] ~= '' then rcall('HSET', meta_key, 'tune_key', ARGV[9]) end
refresh_hot(meta_key)

local event = {'XADD', events_key, '*', 'type', 'sale_tuned', 'at_ms', now,
  'sale_id', rcall('HGET', meta_key, 'sale_id'), 'actor', ARGV[7]}
for i = 1, #changes do event[#event + 1] = changes[i] end
if spec then
  event[#event + 1] = 'added'
  event[#event + 1] = spec.kind == 'r' and (spec.hi - spec.lo + 1) or #spec.items
  event[#event + 1] = 'total'
  event[#event + 1] = rcall('HGET', meta_key, 'total')
end
rcall(unpack(event))
return {1, version}
