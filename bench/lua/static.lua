-- The same request over and over (GET or a fixed POST body); no response parsing.
-- wrk ... -s static.lua -- method=POST path=/token body=... header="Authorization: Basic ..."
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

local req

function init(args)
  local cfg = common.parse_args(args)
  req = wrk.format(cfg.method or "GET", cfg.path or "/", cfg.headers, cfg.body)
end

function request()
  return req
end
