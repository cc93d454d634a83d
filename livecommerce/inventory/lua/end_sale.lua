-- End a flash sale early, if it is still the current one. Returns 1 if it ended now.
-- KEYS: 1 sale hash
-- ARGV: 1 sale id, 2 now (ms)
local sale = redis.call('HMGET', KEYS[1], 'id', 'ends')
if sale[1] ~= ARGV[1] or tonumber(sale[2]) <= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'ends', ARGV[2])
return 1
