-- wrk script of benches/flood/run.sh: distinct keys (every request a MISS that is stored), or
-- with "vary" a Vary flood: URLS URLs (default 1024), each asked with ever new X-V values
-- (the edge keeps max_variants of each).
--   wrk ... -s flood.lua URL -- PATH PREFIX [vary [URLS]]
local path, prefix, vary, urls = "/16k.bin", "r", false, 1024
local n = 0
init = function(args)
  path = args[1] or path
  prefix = args[2] or prefix
  vary = args[3] == "vary"
  urls = tonumber(args[4] or urls)
end
request = function()
  n = n + 1
  if vary then
    return wrk.format("GET", "/vary" .. path .. "?u=" .. (n % urls),
      { ["X-V"] = prefix .. "-" .. n })
  end
  return wrk.format("GET", path .. "?k=" .. prefix .. "-" .. n)
end
