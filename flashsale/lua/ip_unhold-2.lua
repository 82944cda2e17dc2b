--[[
  ip_unhold-2: end holds of ip_hold-3 in an address's IP home bucket: the address's count
  goes down by one per hold that existed. Idempotent: a hold ended before is skipped, so
  the engine may end one from two places (a refused purchase, a release, a reconciliation).

  KEYS[1] ips      hash  "<ip>" orders of the address counted here
  KEYS[2] ipholds  hash  "o:<order_id>" -> packed hold, "i:<ip>" -> held ids (ip_hold-3)

  ARGV[1], ARGV[2], ...  the order ids whose holds end

  Replies: the number of holds ended
]]
local rcall = redis.call
local ips_key, holds_key = KEYS[1], KEYS[2]

-- `held` without `id .. ' '` (found where an id starts: at 1 or after a space)
local function without(held, id)
  local at = 1
  while true do
    local s, e = string.find(held, id .. ' ', at, true)
    if not s then return held end
    if s == 1 or string.sub(held, s - 1, s - 1) == ' ' then
      return string.sub(held, 1, s - 1) .. string.sub(held, e + 1)
    end
    at = s + 1
  end
end

local ended = 0
for _, id in ipairs(ARGV) do
  local packed = rcall('HGET', holds_key, 'o:' .. id)
  if packed then
    local ip = cmsgpack.unpack(packed)[1]
    rcall('HDEL', holds_key, 'o:' .. id)
    if rcall('HINCRBY', ips_key, ip, -1) <= 0 then rcall('HDEL', ips_key, ip) end
    local index = 'i:' .. ip
    local held = without(rcall('HGET', holds_key, index) or '', id)
    if held == '' then rcall('HDEL', holds_key, index) else rcall('HSET', holds_key, index, held) end
    ended = ended + 1
  end
end
return ended
