"""Interop: requests signed by the vendors' own client libraries against a running rulegate.

apigateway-sdk-python (Huawei App authentication), jdcloud-apim-sdk (JD JDCLOUD2) and PyJWT
sign (PyJWT also reads the OAuth2 tokens rulegate issues); the standard library sends.

    python3 interop.py HOST:PORT KEYDIR

apigateway-sdk-python (Huawei's App-authentication signer) and PyJWT sign; the standard
library sends. Every answer is compared byte for byte (status and body). Tencent publishes no
PyPI signer: its key-pair requests are built exactly as Tencent's own Python demo does
(hmac + base64 over "x-date: …\\nsource: …"). Exit status 0 when every case passed.
"""
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import sys
import time
import urllib.parse

import jwt  # PyJWT
from apigateway_sdk_python import signer as apig
from jdcloud_apim_sdk.core.credential import Credential as JdCredential
from jdcloud_apim_sdk.core.signer import Signer as JdSigner

ADDR, KEYDIR = sys.argv[1], sys.argv[2]
HOST, PORT = ADDR.rsplit(":", 1)
failures = []


def send(method, path, headers, body=b""):
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    out = (r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()})
    conn.close()
    return out


def check(name, got, status, body=None, body_prefix=None):
    ok = got[0] == status and (body is None or got[1] == body) and (body_prefix is None or got[1].startswith(body_prefix))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"\n     got {got[0]} {got[1]!r}"))
    if not ok:
        failures.append(name)


def huawei(code, msg, rid):
    return f'{{"error_code": "{code}", "error_msg": "{msg}", "request_id": "{rid}"}}'


# ---- Huawei App authentication with apigateway-sdk-python ------------------------------------

def apig_signed(key, secret, method, path, body="", headers=None, date=None):
    s = apig.Signer()
    s.Key, s.Secret = key, secret
    r = apig.HttpRequest(method, f"http://shop.test{path}", dict(headers or {}), body)
    if date:
        r.headers["X-Sdk-Date"] = date
    s.Sign(r)
    return r


def huawei_cases():
    key, secret = "hw-app-key", "hw-app-secret-0123456789"
    r = apig_signed(key, secret, "GET", "/orders?size=10&page=2")
    check("huawei: GET signed by apigateway-sdk-python passes", send("GET", r.uri, r.headers), 200, '{"ok":true}')

    r = apig_signed(key, secret, "POST", "/orders", '{"sku":"A-1","qty":2}', {"Content-Type": "application/json"})
    check("huawei: POST with a JSON body passes", send("POST", r.uri, r.headers, r.body), 200, '{"ok":true}')

    r = apig_signed(key, secret, "POST", "/orders", '{"sku":"A-1","qty":2}', {"Content-Type": "application/json"})
    got = send("POST", r.uri, r.headers, b'{"sku":"A-1","qty":9}')
    rid = got[2].get("x-request-id", "")
    check("huawei: tampered body gets APIG.0303 verify signature fail", got, 401,
          body_prefix='{"error_code": "APIG.0303", "error_msg": "Incorrect app authentication information: verify signature fail, canonicalRequest:POST|/orders/||')

    old = (datetime.datetime.utcnow() - datetime.timedelta(minutes=16)).strftime("%Y%m%dT%H%M%SZ")
    r = apig_signed(key, secret, "GET", "/orders", date=old)
    got = send("GET", r.uri, r.headers)
    check("huawei: a date 16 minutes old gets APIG.0303 signature expired", got, 401,
          body_prefix=f'{{"error_code": "APIG.0303", "error_msg": "Incorrect app authentication information: signature expired, signature time:{old},server time:')

    r = apig_signed("hw-unknown", secret, "GET", "/orders")
    got = send("GET", r.uri, r.headers)
    check("huawei: unknown app key gets APIG.0303 app not found", got, 401,
          huawei("APIG.0303", "Incorrect app authentication information: app not found, appkey hw-unknown", got[2].get("x-request-id")))

    r = apig_signed("hw-other-key", "hw-other-secret-0123456789", "GET", "/orders")
    got = send("GET", r.uri, r.headers)
    check("huawei: a valid app not bound to the route gets APIG.0304", got, 403,
          huawei("APIG.0304", "The app is not authorized to access the API.", got[2].get("x-request-id")))


# ---- JWT with PyJWT --------------------------------------------------------------------------

def jwt_cases():
    key = open(f"{KEYDIR}/users.es256.key.pem").read()
    now = int(time.time())
    claims = {"iss": "https://id.shop.test", "aud": "shop-api", "sub": "c-1", "scope": "orders:read", "exp": now + 300}

    def call(token):
        return send("GET", "/me", {"Host": "shop.test", "Authorization": f"Bearer {token}"})

    check("jwt: ES256 token from PyJWT passes", call(jwt.encode(claims, key, algorithm="ES256")), 200, '{"me":true}')
    got = call(jwt.encode(dict(claims, exp=now - 120), key, algorithm="ES256"))
    check("jwt: expired token gets APIG.0307", got, 401, huawei("APIG.0307", "The token must be updated.", got[2].get("x-request-id")))
    got = call(jwt.encode(dict(claims, aud="billing"), key, algorithm="ES256"))
    check("jwt: wrong audience gets APIG.0301", got, 401,
          huawei("APIG.0301", "Incorrect IAM authentication information: audience not accepted", got[2].get("x-request-id")))
    got = call(jwt.encode(dict(claims, scope="profile"), key, algorithm="ES256"))
    check("jwt: missing scope gets APIG.0302", got, 403,
          huawei("APIG.0302", "The IAM user is not authorized to access the API.", got[2].get("x-request-id")))
    # PyJWT itself refuses to HMAC with a public key, so the attacker's token is made by hand.
    public = open(f"{KEYDIR}/users.es256.pub.pem").read().encode()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    unsigned = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    forged = unsigned + "." + b64(hmac.new(public, unsigned.encode(), hashlib.sha256).digest())
    got = call(forged)
    check("jwt: HS256 signed with the public key is refused", got, 401,
          huawei("APIG.0301", "Incorrect IAM authentication information: no key of this provider verifies HS256 tokens", got[2].get("x-request-id")))


# ---- Huawei OAuth2: tokens rulegate issues, read by PyJWT; tokens PyJWT mints, used --------

OAUTH2_KEY = "interop-oauth2-signing-key-0123456789"  # the gateway's INTEROP_OAUTH2_KEY
OAUTH2_ISSUER = "rulegate/shop/tokens"


def oauth2_cases():
    form = "grant_type=client_credentials&client_id=hw-app-key&client_secret=hw-app-secret-0123456789"
    got = send("POST", "/oauth2/token", {"Host": "shop.test", "Content-Type": "application/x-www-form-urlencoded"}, form.encode())
    check("oauth2: client_credentials gets tokens", got, 200, body_prefix='{"access_token":"')
    answer = json.loads(got[1]) if got[0] == 200 else {}
    access = answer.get("access_token", "")
    try:
        claims = jwt.decode(access, OAUTH2_KEY, algorithms=["HS256"], issuer=OAUTH2_ISSUER)
        ok = (claims["sub"] == "hw-app-key" and claims["token_use"] == "access"
              and claims["exp"] - claims["iat"] == 3600 == answer.get("expires_in")
              and claims["jti"] == got[2].get("x-request-id"))
        detail = "" if ok else f" (claims {claims})"
    except jwt.PyJWTError as e:
        ok, detail = False, f" ({e!r})"
    print(("ok   " if ok else "FAIL ") + "oauth2: PyJWT verifies the issued access token and its claims" + detail)
    if not ok:
        failures.append("oauth2: PyJWT verifies the issued access token")

    def call(token):
        return send("GET", "/wallet", {"Host": "shop.test", "Authorization": f"Bearer {token}"})

    check("oauth2: the issued access token opens the route", call(access), 200, '{"wallet":true}')
    now = int(time.time())
    minted = {"iss": OAUTH2_ISSUER, "sub": "hw-app-key", "iat": now, "exp": now + 300, "jti": "py", "token_use": "access"}
    check("oauth2: an access token minted by PyJWT with the key passes", call(jwt.encode(minted, OAUTH2_KEY, algorithm="HS256")), 200, '{"wallet":true}')
    got = call(jwt.encode(dict(minted, exp=now - 60), OAUTH2_KEY, algorithm="HS256"))
    check("oauth2: an expired access token gets APIG.1002", got, 401,
          huawei("APIG.1002", "Access token is expired", got[2].get("x-request-id")))
    got = call(jwt.encode(dict(minted, token_use="refresh"), OAUTH2_KEY, algorithm="HS256"))
    check("oauth2: a refresh token used as an access token gets APIG.2203", got, 400,
          huawei("APIG.2203", "Access token is invalid", got[2].get("x-request-id")))
    got = call(jwt.encode(minted, "another-key-0123456789abcdef", algorithm="HS256"))
    check("oauth2: a token signed with another key gets APIG.2203", got, 400,
          huawei("APIG.2203", "Access token is invalid", got[2].get("x-request-id")))
    got = call(jwt.encode(dict(minted, sub="nobody"), OAUTH2_KEY, algorithm="HS256"))
    check("oauth2: a token for an unknown app gets APIG.1004", got, 401,
          huawei("APIG.1004", "App not exist", got[2].get("x-request-id")))


# ---- Tencent key pair, as Tencent's Python demo signs ----------------------------------------

def tencent_cases():
    secret_id, secret_key = "AKID-interop", "tencent-interop-secret"

    def signed(source="interop", algorithm="hmac-sha1", digest=hashlib.sha1, skew=0):
        x_date = (datetime.datetime.utcnow() + datetime.timedelta(seconds=skew)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        sign_str = f"x-date: {x_date}\nsource: {source}"
        sign = base64.b64encode(hmac.new(secret_key.encode(), sign_str.encode(), digest).digest()).decode()
        auth = f'hmac id="{secret_id}", algorithm="{algorithm}", headers="x-date source", signature="{sign}"'
        return {"Host": "partners.test", "X-Date": x_date, "Source": source, "Authorization": auth}

    check("tencent: demo-style hmac-sha1 passes", send("GET", "/release/invoices", signed()), 200, '{"invoices":[]}')
    check("tencent: hmac-sha256 passes", send("GET", "/release/invoices", signed(algorithm="hmac-sha256", digest=hashlib.sha256)), 200, '{"invoices":[]}')
    h = signed()
    h["Source"] = "tampered"
    check("tencent: a tampered header does not match", send("GET", "/release/invoices", h), 401, '{"message":"HMAC signature does not match."}')
    check("tencent: an x-date 20 minutes old is out of date", send("GET", "/release/invoices", signed(skew=-1200)), 401,
          '{"message":"HMAC signature cannot be verified, the x-date header is out of date for HMAC Authentication."}')


# ---- Tencent application authentication (ApiAppKey), as Tencent's Python demo signs --------
#
# The demo (628/40461), step by step: X-Date is the GMT date; signing_str = "x-date: " + X-Date
# + "\n" + METHOD + "\n" + Accept + "\n" + Content-Type + "\n" + ContentMD5 + "\n" +
# PathAndParameters; a JSON body's ContentMD5 = base64(md5(body).hexdigest()), signed but not
# sent; a form's ContentMD5 = "" and its fields, sorted by name, follow the path as "?k=v&k=v"
# unencoded; the path loses its /release, /test or /prepub prefix; the query, as written in the
# URL, is split on "&" and sorted; signature = base64(hmac-sha1(ApiAppSecret, signing_str)).

def tencent_app_cases():
    api_app_key, api_app_secret = "AKID-interop", "tencent-interop-secret"

    def signed(method, path, query="", json_body=None, form=None, accept="application/json", key=api_app_key,
               secret=api_app_secret, algorithm="hmac-sha1", skew=0, send_md5=False, decoded_query=None):
        x_date = (datetime.datetime.utcnow() + datetime.timedelta(seconds=skew)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        body, content_type, content_md5 = b"", "", ""
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
            content_md5 = base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode()
        path_params = path
        if path.startswith(("/release", "/test", "/prepub")):
            path_params = "/" + (path[1:].split("/", 1) + [""])[1]
        pieces = sorted(query.split("&")) if query else []
        if decoded_query is not None:  # the Go demo's way: decoded, sorted by name
            pieces = sorted(f"{k}={v}" for k, v in decoded_query.items())
        if form is not None:
            body, content_type = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
            pieces = sorted(pieces + [f"{k}={v}" for k, v in form.items()])
        if pieces:
            path_params += "?" + "&".join(pieces)
        sign_str = f"x-date: {x_date}\n{method}\n{accept}\n{content_type}\n{content_md5}\n{path_params}"
        sign = base64.b64encode(hmac.new(secret.encode(), sign_str.encode(), hashlib.sha1).digest()).decode()
        auth = f'hmac id="{key}", algorithm="{algorithm}", headers="x-date", signature="{sign}"'
        h = {"Host": "partners.test", "X-Date": x_date, "Accept": accept, "Authorization": auth}
        if content_type:
            h["Content-Type"] = content_type
        if send_md5:
            h["Content-MD5"] = content_md5
        return path + ("?" + query if query else ""), h, body

    def rejected(name, got, status, text):
        """Tencent's row byte for byte: status, {"message":…}, JSON, and a request id."""
        headers_ok = got[2].get("content-type") == "application/json" and len(got[2].get("x-api-requestid", "")) == 32
        check(name, got if headers_ok else (got[0], f"{got[1]} (headers {got[2]!r})", got[2]), status,
              json.dumps({"message": text}, separators=(",", ":")))

    ok, not_match = '{"quotes":[]}', "HMAC signature does not match."
    t, h, b = signed("GET", "/release/quotes", query="symbol=ACME&currency=EUR")
    check("tencent app auth: a demo-signed GET with a query passes", send("GET", t, h, b), 200, ok)
    t, h, b = signed("GET", "/test/quotes", query="q=acme%20corp&a.b=1", decoded_query={"q": "acme corp", "a.b": "1"})
    check("tencent app auth: a GET signed decoded (the Go demo), test stage, passes", send("GET", t, h, b), 200, ok)
    t, h, b = signed("POST", "/release/quotes", form={"symbol": "ACME", "qty": "3", "note": "a b/c", "token": "YWI="})
    check("tencent app auth: a form POST as the demo (fields signed) passes", send("POST", t, h, b), 200, ok)
    t, h, b = signed("POST", "/release/quotes", json_body={"arg1": "a", "arg2": "b"})
    check("tencent app auth: a JSON POST as the demo (MD5 signed, not sent) passes", send("POST", t, h, b), 200, ok)
    t, h, b = signed("POST", "/release/quotes", json_body={"arg1": "a", "arg2": "b"}, send_md5=True)
    check("tencent app auth: a JSON POST with Content-MD5 sent passes", send("POST", t, h, b), 200, ok)

    t, h, b = signed("POST", "/release/quotes", json_body={"arg1": "a", "arg2": "b"})
    rejected("tencent app auth: a JSON body changed after signing", send("POST", t, h, b'{"arg1": "a", "arg2": "c"}'),
             401, not_match)
    t, h, b = signed("POST", "/release/quotes", json_body={"arg1": "a"}, send_md5=True)
    rejected("tencent app auth: a sent Content-MD5 that is not the body's", send("POST", t, h, b'{"arg1": "b"}'),
             401, not_match)
    t, h, b = signed("POST", "/release/quotes", form={"symbol": "ACME", "qty": "3"})
    rejected("tencent app auth: a form field changed after signing", send("POST", t, h, b"symbol=ACME&qty=300"),
             401, not_match)
    rejected("tencent app auth: a form field added after signing", send("POST", t, h, b + b"&admin=1"), 401, not_match)
    t, h, b = signed("GET", "/release/quotes", query="symbol=ACME")
    h["Accept"] = "text/plain"
    rejected("tencent app auth: a changed Accept does not match", send("GET", t, h, b), 401, not_match)
    t, h, b = signed("GET", "/release/quotes", query="a=x&b=y")
    rejected("tencent app auth: two parameters merged into one (%26)", send("GET", "/release/quotes?a=x%26b=y", h, b),
             401, not_match)
    t, h, b = signed("GET", "/release/quotes", secret="not-the-secret")
    rejected("tencent app auth: another secret does not match", send("GET", t, h, b), 401, not_match)

    t, h, b = signed("GET", "/release/quotes")
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
    conn.putrequest("GET", t, skip_host=True, skip_accept_encoding=True)
    for k, v in list(h.items()) + [("Authorization", h["Authorization"])]:
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    got = (r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()})
    conn.close()
    rejected("tencent app auth: a repeated Authorization", got, 401, "HMAC do not support multiple HTTP header.")
    no_date = signed("GET", "/release/quotes")
    del no_date[1]["X-Date"]
    no_auth = signed("GET", "/release/quotes")
    del no_auth[1]["Authorization"]
    for name, (t, h, b), status, text in [
        ("an x-date 901 s old is out of date", signed("GET", "/release/quotes", skew=-901), 401,
         "HMAC signature cannot be verified, the x-date header is out of date for HMAC Authentication."),
        ("no x-date", no_date, 401,
         "HMAC signature cannot be verified, a valid x-date header is required for HMAC Authentication."),
        ("an unknown ApiAppKey finds no apiapp", signed("GET", "/release/quotes", key="AKID-nobody"), 403,
         "Found no validate apiapp."),
        ("an app the API does not bind finds no apiapp",
         signed("GET", "/release/quotes", key="AKID-kiosk", secret="tencent-kiosk-secret"), 403,
         "Found no validate apiapp."),
        ("hmac-sha256 is not app authentication's", signed("GET", "/release/quotes", algorithm="hmac-sha256"), 401,
         "HMAC algorithm hmac-sha256 not supported."),
        ("no Authorization", no_auth, 401,
         "HMAC signature cannot be verified, a validate authorization header is required"),
    ]:
        rejected("tencent app auth: " + name, send("GET", t, h, b), status, text)


# ---- JD Cloud JDCLOUD2 with jdcloud-apim-sdk ---------------------------------------------------

class _Quiet:
    def log(self, *args):
        pass


def jd_signed(method, path, body=""):
    headers = {"Content-Type": "application/json"}
    JdSigner(_Quiet()).sign(method=method, service="apigroup1", region="cn-north-1", uri=f"http://weather.test{path}",
                            headers=headers, data=body, credential=JdCredential("JDAK-interop", "jd-interop-secret"),
                            security_token="")
    headers["Host"] = "weather.test"
    return headers


def jd_body(status, enum, message, rid):
    return f'{{"requestId":"{rid}","error":{{"code":{status},"status":"{enum}","message":"{message}"}}}}'


def jd_cases():
    h = jd_signed("GET", "/v1/forecast?lat=52.5&lon=13.4")
    check("jd: GET signed by jdcloud-apim-sdk passes", send("GET", "/v1/forecast?lat=52.5&lon=13.4", h), 200, '{"forecast":[]}')
    got = send("GET", "/v1/forecast?lat=52.5&lon=13.4", h)
    check("jd: the same nonce again gets HTTP_FORBIDDEN", got, 403,
          jd_body(403, "HTTP_FORBIDDEN", "No Resource Permission", got[2].get("x-jdcloud-request-id")))
    body = '{"station":"x","t":4.5}'
    h = jd_signed("POST", "/v1/reports", body)
    check("jd: POST with a JSON body passes", send("POST", "/v1/reports", h, body.encode()), 201, '{"stored":true}')
    h = jd_signed("POST", "/v1/reports", body)
    got = send("POST", "/v1/reports", h, b'{"station":"x","t":9.9}')
    check("jd: a tampered body gets UNAUTHENTICATED", got, 401,
          jd_body(401, "UNAUTHENTICATED", "Verification Failed", got[2].get("x-jdcloud-request-id")))


huawei_cases()
jwt_cases()
oauth2_cases()
tencent_cases()
tencent_app_cases()
jd_cases()
print(f"\n{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
