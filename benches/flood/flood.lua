-- wrk script of benches/flood/run.sh: distinct keys (every request a MISS that is stored), or
-- with "vary" a Vary flood: VARY_URLS URLs, each asked with ever new X-V values.
--   wrk ... -s flood.lua URL -- PATH PREFIX [vary]
local path, prefix, vary = "/16k.bin", "r", false
local n = 0
init = function(args)
  path = args[1] or path
  prefix = args[2] or prefix
  vary = args[3] == "vary"
end
request = function()
  n = n + 1
  if vary then
    return wrk.format("GET", "/vary" .. path .. "?u=" .. (n % 64),
      { ["X-V"] = prefix .. "-" .. n })
  end
  return wrk.format("GET", path .. "?k=" .. prefix .. "-" .. n)
end
