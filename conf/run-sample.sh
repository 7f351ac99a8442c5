#!/bin/sh
# make run: serve conf/sample-site on https://localhost:8443/ with a
# self-signed ECDSA P-256 certificate made once in ./state, gzip on the
# fly into ./state/gzip-cache, and the access log on this terminal.
# KTTPD_RUN_PORT picks another port (the tests use it).
set -eu
bin=${1:-build/kttpd}
port=${KTTPD_RUN_PORT:-8443}
top=$(pwd)
state=$top/state
mkdir -p "$state"
if [ ! -f "$state/localhost.crt" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -days 365 -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 \
		-keyout "$state/localhost.key" -out "$state/localhost.crt" \
		2>/dev/null
	echo "kttpd: made a self-signed certificate in $state"
fi
cat >"$state/kttpd.conf" <<CONF
# written by make run
error_log = "stderr"
access_log = "stderr"          # each request's line, ktls=... included
gzip_cache = "$state/gzip-cache"
server "localhost" {
    listen = { "127.0.0.1:$port tls", "[::1]:$port tls" }
    tls {
        certificate = "$state/localhost.crt"
        key = "$state/localhost.key"
    }
    root = "$top/conf/sample-site"
    gzip = true                # compressed once, kept in gzip_cache
}
CONF
echo "kttpd: serving $top/conf/sample-site at https://localhost:$port/ (Ctrl-C stops)"
echo "kttpd: try: curl --compressed --cacert $state/localhost.crt -i https://localhost:$port/"
echo "kttpd: access log lines appear below; ktls=... says who encrypted each response"
exec "$bin" -c "$state/kttpd.conf"
