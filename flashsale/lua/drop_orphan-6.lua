--[[
  drop_orphan-6: delete one bucket b > 0 of a bucketed drop that no sale can ever use (an
  orphan of a creation stopped midway), when its creation token is below the limit that
  abandon_create-2 gave on bucket 0's slot; a bucket written by a newer creation (token
  at or above the limit) is left alone, atomically, whatever runs meanwhile. An orphan
  never had a buyer (no bucket 0 routed one to it), so it holds only what create_sale-6
  and load_serials-5 wrote (UNLINK: a long list's share is freed off the main thread). Its token stays as a tombstone that expires: create_sale-6 refuses to write the
  bucket again with a token below it (an attempt resumed after its fence).

  KEYS[1] meta  KEYS[2] segments  KEYS[3] items  KEYS[4] itemset  KEYS[5] events
  KEYS[6] creation   string  the token of the creation that wrote this bucket

  ARGV[1] limit          tokens below it are dead
  ARGV[2] tombstone_ms   how long the tombstone stays

  Replies:
  {1}   deleted
  {0}   no bucket deleted here: none (a token alone, left by refused serials, becomes
        the tombstone), or one of a live creation, or of the sale
]]
local rcall = redis.call
local creation_key = KEYS[6]
local token = tonumber(rcall('GET', creation_key) or '')
if not token or token >= tonumber(ARGV[1]) then return {0} end
-- a bucket whose serials create_sale-6 refused has its token and nothing else
local existed = rcall('EXISTS', KEYS[1])
rcall('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])  -- a long list's share: freed aside
rcall('SET', creation_key, ARGV[1], 'PX', tonumber(ARGV[2]))
return {existed}
