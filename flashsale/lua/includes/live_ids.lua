--[[
  The buyer's live orders listed (includes/live.lua), for the refusal that names them.
  Included inside that refusal's branch, so the function is made only when it runs.
  Needs: SUFFIX (includes/live.lua).
]]
-- The live order ids of `user`, at most `max` of them, newest first.
local function live_ids(live, prefix, max)
  local ids = {}
  for at = #live - SUFFIX + 1, 1, -SUFFIX do
    ids[#ids + 1] = prefix .. string.sub(live, at, at + SUFFIX - 1)
    if #ids >= max then break end
  end
  return ids
end
