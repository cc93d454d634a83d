-- Put a hold's units back on the shelf; a second call for the same hold does nothing.
-- KEYS: 1 stock hash, 2 holds zset, 3 hold data hash, 4 sale hash, 5 sale buyers hash
-- ARGV: 1 hold id
-- Returns the units released (0 when the hold was already gone).
local data = redis.call('HGET', KEYS[3], ARGV[1])
if not data then
  return 0
end
local qty, buyer, sale_id = string.match(data, '^(%d+)|([^|]*)|([^|]*)|')
qty = tonumber(qty)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'avail', qty)
redis.call('HINCRBY', KEYS[1], 'held', -qty)
if sale_id ~= '' and redis.call('HGET', KEYS[4], 'id') == sale_id then
  redis.call('HINCRBY', KEYS[4], 'sold', -qty)
  redis.call('HINCRBY', KEYS[5], buyer, -qty)
end
return qty
