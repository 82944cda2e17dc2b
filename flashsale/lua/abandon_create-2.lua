--[[
  abandon_create-2: on bucket 0's slot, housekeeping's verdict on one creation attempt of
  a bucketed drop (token t, begin_create-2) that began long ago and never finished: which
  buckets b > 0 can no longer belong to a sale, so drop_orphan-6 may delete them
  (docs/design.md, "Bucketed drops", housekeeping).

  KEYS[1] meta       hash    bucket 0's settings: the sale exists once it does
  KEYS[2] creation   string  the last token drawn for this sale id

  ARGV[1] t   the attempt's token

  Replies: {kind, limit, first}: every bucket b >= first whose token is below limit is
  an orphan
  {0, L + 1, B}  the sale exists (with B buckets, token L; no token is drawn again):
                 buckets B.. are an older attempt's (a creation with more buckets)
  {1, t + 1, 1}  t is still the last token drawn: the attempt is fenced (the token moves
                 on, so its bucket 0 is refused if it ever resumes), all its buckets go
  {2, L, 1}      a newer attempt (token L > t) began: the buckets of tokens below L are
                 dead (bucket 0 refuses them); L's own are left to L
]]
local rcall = redis.call
local meta_key, creation_key = KEYS[1], KEYS[2]
local t = tonumber(ARGV[1])

local last = tonumber(rcall('GET', creation_key) or '0')
if rcall('EXISTS', meta_key) == 1 then
  return {0, last + 1, tonumber(rcall('HGET', meta_key, 'buckets') or '1')}
end
if last == t then return {1, rcall('INCR', creation_key), 1} end
return {2, last, 1}
