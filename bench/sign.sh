#!/usr/bin/env bash
# Signs one GET request with Huawei APIG's app signature (SDK-HMAC-SHA256, ../shared/spec
# auth-schemes.md §3: canonical request, string to sign, HMAC-SHA256 with the app secret as the
# key), for bench/run.sh's gateway request. Prints the two headers to send, one a line:
#   X-Sdk-Date: 20261204T220000Z
#   Authorization: SDK-HMAC-SHA256 Access=KEY, SignedHeaders=host;x-sdk-date, Signature=HEX
#
# Usage: bench/sign.sh KEY HOST[:PORT] PATH [QUERY [DATE]]   (the secret in $BENCH_APP_SECRET)
#   DATE: %Y%m%dT%H%M%SZ, default now (UTC). The signature stays valid for the gateway's clock
#   skew (bench.policy: 15 minutes), and the policy asks for no nonce, so one signed request can
#   be sent again and again for a whole measurement.
#
# Only what the bench sends is handled: no body (the empty body's SHA-256), headers host and
# x-sdk-date signed, a path and query of RFC 3986 unreserved characters (plus / = &), which
# therefore need no percent-encoding; the query's pairs are sorted here.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 KEY HOST[:PORT] PATH [QUERY [DATE]]" >&2; exit 2; }
KEY=$1 HOST=$2 URI_PATH=$3 QUERY=${4:-} DATE=${5:-$(date -u +%Y%m%dT%H%M%SZ)}
: "${BENCH_APP_SECRET:?set BENCH_APP_SECRET to the app secret}"
for part in "$URI_PATH" "$QUERY"; do
    [[ "$part" =~ ^[A-Za-z0-9._~/=\&-]*$ ]] || { echo "$0: '$part' would need percent-encoding" >&2; exit 2; }
done
[[ "$DATE" =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || { echo "$0: DATE must be %Y%m%dT%H%M%SZ" >&2; exit 2; }

canonical_uri=$URI_PATH
[[ "$canonical_uri" == */ ]] || canonical_uri="$canonical_uri/"
canonical_query=
if [ -n "$QUERY" ]; then
    canonical_query=$(tr '&' '\n' <<<"$QUERY" | awk -F= '{ print (NF > 1) ? $0 : $0 "=" }' | LC_ALL=C sort | paste -sd '&')
fi
empty_body_hash=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
canonical_request=$(printf 'GET\n%s\n%s\nhost:%s\nx-sdk-date:%s\n\nhost;x-sdk-date\n%s' \
    "$canonical_uri" "$canonical_query" "$HOST" "$DATE" "$empty_body_hash")
request_hash=$(printf '%s' "$canonical_request" | openssl dgst -sha256 -r | cut -d' ' -f1)
string_to_sign=$(printf 'SDK-HMAC-SHA256\n%s\n%s' "$DATE" "$request_hash")
signature=$(printf '%s' "$string_to_sign" | openssl dgst -sha256 -hmac "$BENCH_APP_SECRET" -r | cut -d' ' -f1)

printf 'X-Sdk-Date: %s\n' "$DATE"
printf 'Authorization: SDK-HMAC-SHA256 Access=%s, SignedHeaders=host;x-sdk-date, Signature=%s\n' "$KEY" "$signature"
