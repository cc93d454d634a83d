-- A paid hold leaves the books: its units move from held to sold. A second call does nothing.
-- KEYS: 1 stock hash, 2 holds zset, 3 hold data hash, 4 unpaid units by buyer hash
-- ARGV: 1 hold id
-- Returns {units committed, buyer id}; {0, ''} when the hold was already gone.
local data = redis.call('HGET', KEYS[3], ARGV[1])
if not data then
  return {0, ''}
end
local qty, buyer = string.match(data, '^(%d+)|([^|]*)|')
qty = tonumber(qty)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'held', -qty)
redis.call('HINCRBY', KEYS[1], 'sold', qty)
if redis.call('HINCRBY', KEYS[4], buyer, -qty) <= 0 then
  redis.call('HDEL', KEYS[4], buyer)
end
return {qty, buyer}
