-- metacenter.lua: wrk driver for metacenter's HTTP API (PUT/GET /v1/buckets/{b}/objects/{key}).
-- Env: WRK_OP = put | get | stale | load (sequential puts of every key once, then stop),
--      WRK_KEYS (default 100000), WRK_VALUE_BYTES (default 128: one user-metadata value),
--      WRK_BUCKET (default bench; S3 names need 3+ characters, so not "b").
-- Keys are "key-%012d", the names `metacenter bench` uses.
local op = os.getenv("WRK_OP") or "put"
local nkeys = tonumber(os.getenv("WRK_KEYS") or "100000")
local vbytes = tonumber(os.getenv("WRK_VALUE_BYTES") or "128")
local bucket = os.getenv("WRK_BUCKET") or "bench"
local body = '{"size":4096,"etag":"0123456789abcdef0123456789abcdef",' ..
    '"content_type":"application/octet-stream","user_metadata":{"v":"' .. string.rep("v", vbytes) .. '"}}'
local thread_count, counter = 0, 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

local function path(i) return string.format("/v1/buckets/%s/objects/key-%012d", bucket, i) end

-- Requests are formatted once per key (wrk.format in every request() call costs wrk more CPU
-- than the server spends on the request); request() only picks one.
local reqs = {}
local function prepare()
  for i = 0, nkeys - 1 do
    if op == "put" then
      reqs[i] = wrk.format("PUT", path(i), nil, body)
    elseif op == "stale" then
      reqs[i] = wrk.format("GET", path(i) .. "?consistency=stale")
    else
      reqs[i] = wrk.format("GET", path(i))
    end
  end
end

-- WRK_PIPELINE=N (vs_etcd.sh --http-pipeline): each request() returns N requests, which wrk
-- writes at once and counts as N (HTTP/1.1 pipelining; both servers answer them in order). Up to
-- 4096 bundles of N random keys are built once, so request() still only picks one.
local depth = tonumber(os.getenv("WRK_PIPELINE") or "1")
local bundles, nbundles = {}, 0
local function bundle()
  nbundles = math.min(4096, math.max(1, math.floor(nkeys / depth)))
  for b = 1, nbundles do
    local parts = {}
    for j = 1, depth do parts[j] = reqs[math.random(0, nkeys - 1)] end
    bundles[b] = table.concat(parts)
  end
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  wrk.headers["Content-Type"] = "application/json"
  nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  counter = tid or 0
  if op ~= "load" then
    prepare()
    if depth > 1 then bundle() end
  end
end

function request()
  if op == "load" then
    local k = counter
    counter = counter + nthreads
    if k >= nkeys then k = k % nkeys end
    return wrk.format("PUT", path(k), nil, body)
  end
  if depth > 1 then return bundles[math.random(1, nbundles)] end
  return reqs[math.random(0, nkeys - 1)]
end

-- Only the load phase looks at responses: with a response() function wrk hands every response's
-- headers and body to Lua, which doubles its CPU per request.
if op == "load" then function response(status, headers, body)
  -- + 256: the first keys are written once more (wrapping), since the very first request of a
  -- run is sometimes never sent (seen with both servers: one key missing, 404s later).
  if op == "load" and counter >= nkeys + 256 and not stopped then
    -- wrk's main thread sleeps the whole -d regardless: leave a marker the script waits for.
    stopped = true
    local f = io.open((os.getenv("WRK_DONE_PREFIX") or "/tmp/wrk-load") .. "." .. tid, "w")
    if f then f:close() end
    wrk.thread:stop()
  end
end end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
