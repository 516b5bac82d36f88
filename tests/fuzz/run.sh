#!/usr/bin/env bash
# Runs the libFuzzer targets of BUILD_DIR (built with -DGATEWAY_FUZZ=ON) for SECONDS each, one
# at a time, from their seed corpora; prints executions and coverage per target; exits non-zero
# on any finding (the input is kept in BUILD_DIR/fuzz/findings/<target>/).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS        (scripts/dev fuzz [SECONDS] builds, then calls this)
#
# Environment: FUZZ_TARGETS (default: all), FUZZ_ARGS (extra libFuzzer flags, e.g. "-seed=1"),
# FUZZ_PLANTED=1 runs the <target>_planted_fuzz builds instead (tests/fuzz/plant.sh): each from
# its seeds only, and then a finding is the expected result and no finding is a failure.
# Seed corpora are made here from the lists in tests/fuzz/seeds/<target>.list (globs of checked-in
# files) and the generators below; they are copied into BUILD_DIR/fuzz/seeds/<target>/. What a run
# adds goes to BUILD_DIR/fuzz/corpus/<target>/ and is reused by the next run.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR SECONDS}" && pwd)
seconds=${2:-60}
work=$build/fuzz
all_targets=(json csv_reader ndjson_reader x12_reader hl7v2_reader fhirpath spec_loader validator http)
read -r -a targets <<<"${FUZZ_TARGETS:-all}"
[ "${targets[*]}" = all ] && targets=("${all_targets[@]}")

say() { printf '[fuzz] %s\n' "$*" >&2; }

# Largest input per target. Large enough for the seeds the target needs; the JSON-shaped targets
# stay below the nesting depth of the known stack overflow (docs/FUZZING.md, "Known crashes").
max_len() {
  case "$1" in
    fhirpath) echo 2048 ;;
    spec_loader | validator | http) echo 32768 ;;
    *) echo 16384 ;;
  esac
}
dict() {
  case "$1" in
    json | validator | spec_loader | ndjson_reader) echo "$root/tests/fuzz/dict/json.dict" ;;
    x12_reader) echo "$root/tests/fuzz/dict/x12.dict" ;;
    hl7v2_reader) echo "$root/tests/fuzz/dict/hl7v2.dict" ;;
    fhirpath) echo "$root/tests/fuzz/dict/fhirpath.dict" ;;
    http) echo "$root/tests/fuzz/dict/http.dict" ;;
  esac
}

# Every <expression> of the official FHIRPath suite, one file each (XML entities decoded).
make_fhirpath_seeds() {
  local out=$1 n=0
  sed -n 's:.*<expression[^>]*>\(.*\)</expression>.*:\1:p' "$root/tests/data/fhirpath/tests-fhir-r4.xml" |
    sed -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&quot;/"/g' -e "s/&apos;/'/g" -e 's/&amp;/\&/g' |
    while IFS= read -r expression; do
      n=$((n + 1))
      printf '%s' "$expression" >"$out/expression-$n"
    done
}

# One request per route, bodies from tests/data.
make_http_seeds() {
  local out=$1 n=0
  request() {  # METHOD TARGET CONTENT_TYPE BODY_FILE_OR_EMPTY
    local body=""
    n=$((n + 1))
    [ -n "$4" ] && body=$(cat "$root/$4")
    {
      printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n' "$1" "$2"
      [ -n "$3" ] && printf 'Content-Type: %s\r\n' "$3"
      [ -n "$4" ] || [ "$1" = POST ] && printf 'Content-Length: %s\r\n' "${#body}"
      printf '\r\n%s' "$body"
    } >"$out/request-$n"
  }
  request GET /healthz "" ""
  request GET /readyz "" ""
  request GET /metrics "" ""
  request GET /fhir/metadata "" ""
  request GET /fhir/Patient/example "" ""
  request GET /fhir/Patient/a%zz "" ""
  request GET /admin/quarantine "" ""
  request GET /admin/unroutable "" ""
  request GET /admin/dead-letters "" ""
  request POST /admin/dead-letters/1/replay "" ""
  request POST /admin/quarantine/abc/replay "" ""
  request GET /fhir/SubscriptionTopic "" ""
  request GET '/fhir/Subscription/x/$events?eventsSinceNumber=1&eventsUntilNumber=%32' "" ""
  request POST /ingest/econsult application/json tests/data/econsult/request.json
  request POST /ingest/econsult x-application/hl7-v2+er7 tests/data/mappers/econsult-v2/messages.hl7
  request POST /ingest/care-management application/json tests/data/mappers/care-management/events.ndjson
  request POST /ingest/claims/lakeshore-medicaid text/csv tests/data/mappers/lakeshore-medicaid/claims.csv
  request POST /ingest/roster/lakeshore-medicaid text/csv tests/data/mappers/roster/roster.csv
  request POST '/fhir/$validate?profile=http%3A%2F%2Fexample.org' application/fhir+json tests/data/validator/examples/Patient-example.json
  request POST '/fhir/Patient/$validate' application/fhir+json tests/data/validator/examples/Patient-example.json
  request POST /fhir/Subscription application/fhir+json ""
  # Two requests on one connection, the second one chunked.
  n=$((n + 1))
  printf 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nPOST /ingest/econsult HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n' >"$out/request-$n"
}

make_seeds() {
  local target=$1 out=$work/seeds/$1
  rm -rf "$out"
  mkdir -p "$out"
  if [ -f "$root/tests/fuzz/seeds/$target.list" ]; then
    local pattern file
    while IFS= read -r pattern; do
      case "$pattern" in '' | '#'*) continue ;; esac
      for file in "$root"/$pattern; do
        [ -f "$file" ] && cp "$file" "$out/$(echo "${file#"$root"/}" | tr '/' '_')"
      done
    done <"$root/tests/fuzz/seeds/$target.list"
  fi
  case "$target" in
    fhirpath) make_fhirpath_seeds "$out" ;;
    http) make_http_seeds "$out" ;;
  esac
}

# "#1234 DONE cov: 812 ft: 2345 corp: 120/30Kb ... exec/s: 98 rss: 400Mb" -> the field after NAME.
field() { awk -v key="$1" '{ for (i = 1; i < NF; i++) if ($i == key) { print $(i + 1); exit } }' <<<"$2"; }

planted=${FUZZ_PLANTED:-0}
failed=()
printf '%-14s %8s %9s %7s %7s %7s  %s\n' target seconds runs cov ft exec/s result
for target in "${targets[@]}"; do
  binary=$build/bin/${target}_fuzz
  [ "$planted" = 1 ] && binary=$build/bin/${target}_planted_fuzz
  if [ ! -x "$binary" ]; then
    say "$binary is missing"
    failed+=("$target")
    continue
  fi
  make_seeds "$target"
  corpus=$work/corpus/$target
  findings=$work/findings/$target
  log=$work/logs/$target.log
  if [ "$planted" = 1 ]; then
    corpus=$work/planted/corpus/$target
    findings=$work/planted/findings/$target
    log=$work/planted/logs/$target.log
    rm -rf "$corpus" "$findings"
  fi
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  flags=(-max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=60 -rss_limit_mb=4096
         -artifact_prefix="$findings/" -print_final_stats=1)
  [ -n "$(dict "$target")" ] && flags+=(-dict="$(dict "$target")")
  started=$SECONDS
  # shellcheck disable=SC2086
  (cd "$work" && "$binary" "${flags[@]}" ${FUZZ_ARGS:-} "$corpus" "$work/seeds/$target") >"$log" 2>&1
  status=$?
  elapsed=$((SECONDS - started))
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  result=ok
  if [ $status -ne 0 ]; then
    result="FINDING (exit $status): $(ls -t "$findings" 2>/dev/null | head -1 | sed "s|^|$findings/|")"
    if [ "$planted" = 1 ]; then
      if grep -q 'heap-buffer-overflow' "$log" && grep -q "tests/fuzz/plant/$target/" "$log"; then
        result="planted bug found: $result"
      else
        result="not the planted bug: $result"
        failed+=("$target")
      fi
    else
      failed+=("$target")
    fi
  elif [ "$planted" = 1 ]; then
    result="planted bug NOT found"
    failed+=("$target")
  fi
  printf '%-14s %8s %9s %7s %7s %7s  %s\n' "$target" "$elapsed" "${runs:-?}" "$(field cov: "$last")" \
    "$(field ft: "$last")" "$(field exec/s: "$last")" "$result"
  if [ $status -ne 0 ] && [ "$planted" != 1 ]; then
    grep -m1 -B2 -A25 -E '==ERROR|runtime error|fuzz oracle failed|ALARM|out-of-memory|deadly signal' "$log" >&2 || tail -40 "$log" >&2
    say "full log: $log"
  fi
done
if [ "$planted" = 1 ]; then
  [ ${#failed[@]} -eq 0 ] || { say "planted bug not found by: ${failed[*]}"; exit 1; }
  say "every planted bug found (${#targets[@]} targets, at most ${seconds} s each)"
  exit 0
fi
if [ ${#failed[@]} -ne 0 ]; then
  say "findings in: ${failed[*]}"
  exit 1
fi
say "no findings (${#targets[@]} targets, ${seconds} s each)"
