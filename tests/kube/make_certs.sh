#!/usr/bin/env bash
# Makes a throw-away CA (ca.crt) and a server certificate for 127.0.0.1 (s.crt, s.key) in
# DIR, valid for a day, for the kube API test server.
set -euo pipefail
cd "$1"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext.cnf
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=nodeagent-test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout s.key -out s.csr -subj /CN=127.0.0.1 2>/dev/null
openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out s.crt -days 1 -extfile ext.cnf 2>/dev/null
