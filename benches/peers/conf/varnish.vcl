vcl 4.1;
# The Varnish peer on 127.0.0.1:9102 (malloc storage, see run.sh). Everything but the X-Cache
# header is Varnish's built-in VCL, so this is Varnish as shipped: the TTL comes from the
# origin's Cache-Control: public, max-age=3600.

backend origin {
    .host = "127.0.0.1";
    .port = "9001";
}

sub vcl_deliver {
    # The same header edgecache and the ceiling send, so run.sh checks all three alike.
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
