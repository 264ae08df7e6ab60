-- wrk script for the KVStore HTTP API: PUT or GET of 16-byte keys with 128-byte values.
--
--   wrk -s kv.lua http://127.0.0.1:8001 -- put      PUT /kv/<key> with a 128-byte body
--   wrk -s kv.lua http://127.0.0.1:8001 -- get      GET /kv/<key> (linearizable)
--   wrk -s kv.lua http://127.0.0.1:8001 -- get lease|stale
--
-- Keys are "key-" and 12 digits (16 bytes), drawn from KEYS (1000) so GETs find what PUTs
-- wrote. Point it at the leader: wrk does not follow the 307 a follower answers with.
-- done() prints one line: requests/s, p50 and p99 latency, and answers that were not 2xx.
local KEYS = 1000
local mode = "put"
local consistency = nil
local value = string.rep("v", 128)

function init(args)
  mode = args[1] or "put"
  consistency = args[2]
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local key = string.format("key-%012d", math.random(0, KEYS - 1))
  if mode == "put" then
    return wrk.format("PUT", "/kv/" .. key, nil, value)
  end
  local path = "/kv/" .. key
  if consistency then path = path .. "?consistency=" .. consistency end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1000000
  io.write(string.format("%.0f req/s  p50 %.2f ms  p99 %.2f ms  non-2xx %d  socket errors %d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
