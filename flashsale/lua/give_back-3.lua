--[[
  give_back-3: end a claim of take-5 in the bucket that lent the serial. Idempotent: a
  claim already ended answers {0} and changes nothing.

  KEYS[1] meta   hash  this bucket's counters ("lent" -= 1 when the serial comes back)
  KEYS[2] returned list released serials: a serial given back is lent or sold first
  KEYS[3] claims hash  order_id -> packed claim (take-5)

  ARGV[1] order_id
  ARGV[2] 'return': the home bucket refused (or fenced) the order: the serial comes back
          'placed': the home bucket holds the order with this serial: only the claim goes

  Replies:
  {1, kind, serial}   the claim ended
  {0, ''}             no such claim (ended before)
]]
local rcall = redis.call
local meta_key, returned_key, claims_key = KEYS[1], KEYS[2], KEYS[3]
local order_id, mode = ARGV[1], ARGV[2]

local packed = rcall('HGET', claims_key, order_id)
if not packed then return {0, ''} end
local claim = cmsgpack.unpack(packed)
if mode == 'return' then
  rcall('LPUSH', returned_key, claim[1] .. ':' .. claim[2])
  rcall('HINCRBY', meta_key, 'lent', -1)
elseif mode ~= 'placed' then
  return redis.error_reply('ERR give_back mode must be return or placed')
end
rcall('HDEL', claims_key, order_id)
return {1, claim[1], claim[2]}
