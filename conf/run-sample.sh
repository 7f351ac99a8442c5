#!/bin/sh
# make run: serve conf/sample-site on https://localhost:8443/ with a
# self-signed ECDSA P-256 certificate made once in ./state.
set -eu
bin=${1:-build/kttpd}
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
access_log = "stderr"
server "localhost" {
    listen = { "127.0.0.1:8443 tls", "[::1]:8443 tls" }
    tls {
        certificate = "$state/localhost.crt"
        key = "$state/localhost.key"
    }
    root = "$top/conf/sample-site"
}
CONF
echo "kttpd: serving $top/conf/sample-site at https://localhost:8443/ (Ctrl-C stops)"
echo "kttpd: try: curl --cacert $state/localhost.crt https://localhost:8443/"
exec "$bin" -c "$state/kttpd.conf"
