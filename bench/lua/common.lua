-- Shared by the wrk scripts: a monotonic clock, thread bookkeeping, and a JSON report line.
local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
int kill(int pid, int sig);
int getpid(void);
]])

local M = {}
local ts = ffi.new("bench_timespec")

function M.now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- This thread's pool or count ran out: stop it, and when it is the last one (threads
-- check in through done_file) end the whole run now: SIGINT makes wrk stop sleeping out
-- its -d and print the results.
function M.finish(done_file, nthreads, running)
  if running ~= false then wrk.thread:stop() end
  if done_file then
    local f = io.open(done_file, "a")
    f:write("done\n")
    f:close()
    local n = 0
    for _ in io.lines(done_file) do n = n + 1 end
    if n < nthreads then return end
  end
  ffi.C.kill(ffi.C.getpid(), 2)
end

function M.parse_args(args)
  local cfg = { headers = {} }
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k == "header" then
      local name, value = v:match("^([^:]+):%s*(.*)$")
      cfg.headers[name] = value
    elseif k then
      cfg[k] = v
    end
  end
  return cfg
end

M.threads = {}

function M.setup(thread)
  thread:set("tid", #M.threads)
  table.insert(M.threads, thread)
end

local function num(v)
  if v == nil then return "null" end
  return string.format("%.6f", v)
end

function M.done(summary, latency, requests)
  local e = summary.errors
  local out = {
    '"requests":' .. summary.requests,
    '"duration_s":' .. num(summary.duration / 1e6),
    '"errors_connect":' .. e.connect, '"errors_read":' .. e.read, '"errors_write":' .. e.write,
    '"errors_status":' .. e.status, '"errors_timeout":' .. e.timeout,
    '"p50_ms":' .. num(latency:percentile(50) / 1000),
    '"p90_ms":' .. num(latency:percentile(90) / 1000),
    '"p99_ms":' .. num(latency:percentile(99) / 1000),
    '"mean_ms":' .. num(latency.mean / 1000),
    '"max_ms":' .. num(latency.max / 1000),
  }
  local threads = {}
  for _, t in ipairs(M.threads) do
    local ok, bad = t:get("ok"), t:get("bad")
    if ok ~= nil then
      table.insert(threads, string.format('{"ok":%d,"bad":%d,"first":%s,"last":%s,"statuses":"%s","exhausted":%s}',
        ok, bad, num(t:get("first")), num(t:get("last")), t:get("statuses") or "",
        tostring(t:get("exhausted") == true)))
    end
  end
  table.insert(out, '"threads":[' .. table.concat(threads, ",") .. "]")
  io.write("BENCHJSON {" .. table.concat(out, ",") .. "}\n")
end

return M
