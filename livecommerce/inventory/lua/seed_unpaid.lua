-- Install a buyer's unpaid holds as SQL has them, unless the set is already there.
-- KEYS: 1 the buyer's unpaid holds zset (see unpaid.lua)
-- ARGV: 1 expire at (ms), then per reserved order: member "hold id:qty", deadline (ms)
-- Returns 1 when seeded now, 0 when it was there already.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('ZADD', KEYS[1], '+inf', '~:0')
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
