--[[
  ip_hold-3: count one purchase of an address in the address's IP home bucket
  (crc32(ip) mod B), before the purchase runs in the buyer's home bucket, when the two
  differ (docs/design.md "Bucketed drops": the per-IP limit across buckets). The count
  is *held* for the order id until the engine ends it with ip_unhold-2: at once when the
  purchase wrote no order (refused, replayed), after a release of the order, or at a
  later refusal of the address once ip_check-3 at the order's home says it is gone. A
  refusal lists the address's holds so that the engine can check them.

  KEYS[1] meta     hash  this bucket's settings ("hot2": the IP limit, includes/hot.lua)
  KEYS[2] ips      hash  "<ip>" orders of the address counted here (live or in flight)
  KEYS[3] ipholds  hash  "o:<order_id>" -> msgpack {ip, deadline_ms, home slot};
                         "i:<ip>" -> the address's held order ids, each followed by ' '

  ARGV[1] order_id (of its home bucket's slot)   ARGV[2] ip   ARGV[3] the home slot
  ARGV[4] deadline_ms by Redis' clock: the purchase's own (purchase-10's ARGV[9]). Past
          it here nothing is done; past it at the home bucket the order never appears

  Replies:
  {1, ''}    held (or held before, for the same order id)
  {0, ''}    the IP limit is off in this bucket: nothing held
  {-1, ''}   no such bucket
  {-7, limit, order_id, deadline_ms, home slot, ...}   the address is at the limit: its
             holds (oldest first, at most 100) for the engine to reconcile
  {-18, ''}  deadline passed: nothing done
]]
local rcall = redis.call
local meta_key, ips_key, holds_key = KEYS[1], KEYS[2], KEYS[3]
local order_id, ip, home, deadline = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

local t = rcall('TIME')
if t[1] * 1000 + math.floor(t[2] / 1000) > deadline then return {-18, ''} end

local hot = rcall('HGET', meta_key, 'hot2')
if not hot then -- a sale created before "hot2" existed (or no such bucket)
  --@include hot
  hot = refresh_hot(meta_key)
  if not hot then return {-1, ''} end
end
local limit = select(5, cmsgpack.unpack(hot))
if limit <= 0 then return {0, ''} end

local field = 'o:' .. order_id
if rcall('HEXISTS', holds_key, field) == 1 then return {1, ''} end
local index = 'i:' .. ip
if tonumber(rcall('HGET', ips_key, ip) or '0') >= limit then
  local reply = {-7, limit}
  for id in string.gmatch(rcall('HGET', holds_key, index) or '', '(%S+) ') do
    local packed = rcall('HGET', holds_key, 'o:' .. id)
    if packed then
      local hold = cmsgpack.unpack(packed)
      reply[#reply + 1] = id
      reply[#reply + 1] = hold[2]
      reply[#reply + 1] = hold[3]
      if #reply >= 302 then break end
    end
  end
  return reply
end
rcall('HINCRBY', ips_key, ip, 1)
rcall('HSET', holds_key, field, cmsgpack.pack({ip, deadline, home}),
  index, (rcall('HGET', holds_key, index) or '') .. order_id .. ' ')
return {1, ''}
