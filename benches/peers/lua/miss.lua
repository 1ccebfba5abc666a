-- wrk script for MISS runs: every request gets a query string never used before, so every
-- request is a cache miss that goes to the origin (all the caches key on the query string).
--   wrk ... -s miss.lua URL -- PREFIX
-- PREFIX must differ between runs (run.sh passes round, target and a timestamp), or a later
-- run would find the previous run's URLs cached.
-- Unlike a HIT run, wrk now calls request() in Lua for every request: that costs the load
-- generator CPU, which is one reason MISS figures are not comparable with HIT figures.

-- result.lua sits next to this file; find it from this script's own path, so that wrk can be
-- started from any directory.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "result.lua")

local threads = 0
setup = function(thread)          -- runs once per wrk thread, in the main Lua state
  threads = threads + 1
  thread:set("thread_id", threads)
end

local prefix = "run"
local n = 0

init = function(args)             -- runs in each thread; args are what follows "--"
  prefix = args[1] or prefix
end

request = function()
  n = n + 1
  return wrk.format(nil, wrk.path .. "?miss=" .. prefix .. "-" .. thread_id .. "-" .. n)
end
