-- A buyer's unpaid units across SKUs, bounded: add one hold if the bound allows it.
-- KEYS: 1 the buyer's unpaid holds zset (its own {buyer} hash tag): member "hold id:qty",
--       score the hold's deadline (ms), so an entry that was never removed ages out by itself;
--       the member "~:0" (score +inf) says the set is complete (see seed_unpaid.lua)
-- ARGV: 1 now (ms), 2 bound (units), 3 hold id, 4 qty, 5 deadline (ms)
-- Returns {1, units held before} when added, {0, units held} when the bound refuses it,
--   {-1, 0} when the set is not there (new buyer, or Redis lost it): seed it from SQL first.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local held = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  held = held + tonumber(string.match(member, ':(%d+)$'))
end
local qty = tonumber(ARGV[4])
if held + qty > tonumber(ARGV[2]) then
  return {0, held}
end
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[3] .. ':' .. ARGV[4])
-- kept while any of its holds lives; once it lapses, the next buy seeds it again
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[5]) + 60000, 'GT')
return {1, held}
