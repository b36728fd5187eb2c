-- Requests that each need a fresh value (a code, a refresh token), read from a pool file,
-- or a fixed request repeated up to max=N times. Optionally captures a value from each
-- response into out=FILE.<thread> (json:FIELD or location:PARAM), and in chain=1 mode puts
-- the captured value back into the pool (refresh-token rotation: each response yields the
-- next request's token). When a thread's pool or count runs out it waits for the answers in
-- flight, then ends the run; the rate is computed from its own first-request /
-- last-response clock, not from wrk's -d.
--
-- With pool_header=NAME the pool's values go into that header instead (body= stays fixed): a
-- DPoP proof per request.
--
-- args: method= path= header="N: v" body= template=BODY-with-{} pool=FILE pool_header=NAME nthreads=N
--       max=N capture=json:refresh_token|location:code out=PREFIX chain=1
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

local cfg, pool, head, tail = nil, {}, 1, 0
local static_req, sent, maxn, out, nthreads, verify_pending = nil, 0, 0, nil, 1, false
local cap_kind, cap_name
local status_counts = {}
ok, bad, first, last, statuses, exhausted = 0, 0, nil, nil, "", false

function init(args)
  cfg = common.parse_args(args)
  verify_pending = (tid == 0)
  nthreads = tonumber(cfg.nthreads or "1")
  maxn = tonumber(cfg.max or "0")
  if cfg.pool then
    local i = 0
    for line in io.lines(cfg.pool) do
      if line ~= "" then
        if i % nthreads == tid then
          tail = tail + 1
          pool[tail] = line
        end
        i = i + 1
      end
    end
  end
  if cfg.capture then
    cap_kind, cap_name = cfg.capture:match("^(%w+):(.+)$")
  end
  if cfg.out then
    out = io.open(cfg.out .. "." .. tid, "w")
    out:setvbuf("line")
  end
  if not cfg.template and not cfg.pool_header then
    static_req = wrk.format(cfg.method or "GET", cfg.path or "/", cfg.headers, cfg.body)
  elseif tail == 0 and not cfg.chain then
    exhausted = true -- nothing for this thread: check in as done at once (it just stays idle)
    common.finish(cfg.done, nthreads, false)
  end
end

local function fill(value)
  return (cfg.template:gsub("{}", function() return value end))
end

-- The request carrying one pool value: in the body template, or as the pool_header header.
local function build(value)
  if cfg.pool_header then
    local headers = {}
    for k, v in pairs(cfg.headers) do headers[k] = v end
    headers[cfg.pool_header] = value
    return wrk.format(cfg.method or "POST", cfg.path, headers, cfg.body)
  end
  return wrk.format(cfg.method or "POST", cfg.path, cfg.headers, fill(value))
end

-- Called before each request: a connection reserves the value its request() will use, or,
-- with nothing left, parks itself (60 s) while the answers in flight still arrive and count.
local reserved = 0

function delay()
  local left
  if static_req then
    left = (maxn > 0) and (maxn - sent - reserved) or 1
  else
    left = tail - head + 1 - reserved
  end
  if left > 0 then
    reserved = reserved + 1
    return 0
  end
  if cfg.chain then return 5 end -- a response in flight will refill the pool
  return 60000
end

function request()
  if verify_pending then
    -- wrk calls request() once on thread 0 before the run to check the request: not sent.
    verify_pending = false
    return static_req or build("verify")
  end
  if not first then first = common.now() end
  if reserved > 0 then reserved = reserved - 1 end
  if static_req then
    sent = sent + 1
    return static_req
  end
  if head > tail then
    -- Only when a chain broke (a failed refresh loses its token): a harmless bogus value.
    return build("bench-pool-exhausted")
  end
  local value = pool[head]
  pool[head] = nil
  head = head + 1
  sent = sent + 1
  return build(value)
end

local function header(headers, name)
  for k, v in pairs(headers) do
    if k:lower() == name then return v end
  end
  return nil
end

function response(status, headers, body)
  last = common.now()
  if status >= 200 and status < 400 then
    ok = ok + 1
  else
    bad = bad + 1
    status_counts[status] = (status_counts[status] or 0) + 1
    local parts = {}
    for code, n in pairs(status_counts) do table.insert(parts, code .. ":" .. n) end
    statuses = table.concat(parts, ",")
  end
  if cap_kind then
    local value
    if cap_kind == "json" then
      value = body:match('"' .. cap_name .. '"%s*:%s*"([^"]+)"')
    elseif cap_kind == "location" then
      local loc = header(headers, "location")
      if loc then value = loc:match("[?&]" .. cap_name .. "=([^&#]+)") end
    end
    if value then
      if cfg.chain then
        tail = tail + 1
        pool[tail] = value
      end
      if out then out:write(value, "\n") end
    end
  end
  local done = ok + bad
  if (static_req and maxn > 0 and done >= maxn) or (not static_req and not cfg.chain and head > tail and done >= sent) then
    exhausted = true
    common.finish(cfg.done, nthreads)
  end
end
