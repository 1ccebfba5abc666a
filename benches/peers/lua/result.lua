-- wrk script for every measured run: at the end, one line that run.sh can parse without
-- scraping wrk's human output (whose units change with magnitude: "us", "ms", "k").
-- It defines no request() function, so on HIT runs wrk sends one pre-built request over and
-- over and the script costs nothing per request.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d bytes=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d " ..
    "lat_p50_us=%d lat_p90_us=%d lat_p99_us=%d lat_max_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
