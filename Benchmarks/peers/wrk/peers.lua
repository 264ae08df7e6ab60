-- One wrk script for every HTTP API the peers benchmark loads, so that each is driven the same
-- way: 16-byte keys ("key-" and 12 digits, drawn at random from 1000), 128-byte values.
--
--   wrk -s peers.lua URL -- SYSTEM API OP LEVEL [CONSISTENCY]
--
-- API and OP:
--   kvstore put       PUT /kv/KEY, the value as body (answered once committed and applied)
--   kvstore get       GET /kv/KEY[?consistency=CONSISTENCY] (linearizable by default)
--   etcd put          POST /v3/kv/put {"key": base64, "value": base64} (etcd's JSON gateway)
--   etcd get          POST /v3/kv/range {"key": base64} (linearizable: etcd's default)
--   raftexample put   PUT /KEY, the value as body (answered BEFORE the write commits)
--   API fill          the API's put, but of every key in turn (key 0, 1, 2, ...): run it
--                     before reads so that each key exists
--
-- SYSTEM and LEVEL (the connection count) only name the result. done() prints one line,
--   RESULT system=SYSTEM level=LEVEL ops=N errors=N seconds=S p50_ms=.. p99_ms=.. p999_ms=..
-- where ops counts 2xx answers only (wrk itself counts a 3xx, such as a follower's redirect, as
-- a success) and errors everything else: other statuses and socket errors.
local KEYS = 1000
local VALUE_BYTES = 128

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 4
    if not b then chars = 2 elseif not c then chars = 3 end
    for k = 1, 4 do
      local sextet = math.floor(n / 2 ^ (6 * (4 - k))) % 64
      if k <= chars then
        out[#out + 1] = alphabet:sub(sextet + 1, sextet + 1)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

local requests = {}

function init(args)
  system = args[1] or "unnamed"
  api = args[2] or "kvstore"
  op = args[3] or "put"
  level = args[4] or "0"
  local consistency = args[5]
  ok = 0
  bad = 0
  local value = string.rep("v", VALUE_BYTES)
  local json_headers = { ["Content-Type"] = "application/json" }
  -- Every request is built once here; request() only picks one.
  for i = 0, KEYS - 1 do
    local key = string.format("key-%012d", i)
    local r
    local put = op == "put" or op == "fill"
    if api == "kvstore" and put then
      r = wrk.format("PUT", "/kv/" .. key, nil, value)
    elseif api == "kvstore" and op == "get" then
      local path = "/kv/" .. key
      if consistency then path = path .. "?consistency=" .. consistency end
      r = wrk.format("GET", path)
    elseif api == "etcd" and put then
      r = wrk.format("POST", "/v3/kv/put", json_headers,
        '{"key":"' .. base64(key) .. '","value":"' .. base64(value) .. '"}')
    elseif api == "etcd" and op == "get" then
      r = wrk.format("POST", "/v3/kv/range", json_headers, '{"key":"' .. base64(key) .. '"}')
    elseif api == "raftexample" and put then
      r = wrk.format("PUT", "/" .. key, nil, value)
    else
      error("peers.lua: unknown API and operation: " .. tostring(api) .. " " .. tostring(op))
    end
    requests[i] = r
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

local next_key = 0

function request()
  if op == "fill" then
    next_key = (next_key + 1) % KEYS
    return requests[next_key]
  end
  return requests[math.random(0, KEYS - 1)]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local oks, bads = 0, 0
  for _, t in ipairs(threads) do
    oks = oks + t:get("ok")
    bads = bads + t:get("bad")
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local first = threads[1]
  io.write(string.format(
    "RESULT system=%s level=%s ops=%d errors=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f socket_errors=%d\n",
    first:get("system"), first:get("level"), oks, bads + socket, summary.duration / 1000000,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, socket))
end
