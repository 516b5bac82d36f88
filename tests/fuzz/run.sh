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
    json | spec_loader) echo "$root/tests/fuzz/dict/json.dict" ;;
    ndjson_reader) echo "$root/tests/fuzz/dict/ndjson.dict" ;;
    validator) echo "$root/tests/fuzz/dict/validator.dict" ;;
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

# Every line of the NDJSON event files on its own (whole files are seeds too, by the list), and a
# few small records: short inputs put more of the mutations on keys and values than 16 KB files.
make_ndjson_seeds() {
  local out=$1 n=0 file line
  for file in "$root"/tests/data/mappers/*/*.ndjson; do
    while IFS= read -r line; do
      n=$((n + 1))
      printf '%s\n' "$line" >"$out/line-$n"
    done <"$file"
  done
  printf '{"eventId":"e1","n":1}\n{"a":[1,2.50,"x"],"b":{"c":null}}\n' >"$out/small-1"
  printf '\xef\xbb\xbf{"member":{"dob":"1961-03-19"}}\r\n\r\n{"lines":[{"code":"99214"}]}\n' >"$out/small-2"
  printf '{\n  "eventId": "e2",\n  "eventType": "request"\n}\n' >"$out/small-3"
}

# One seed per primitive of validator_fuzz.cc's kPrimitives: the first byte picks the element
# (byte % 16), the rest is its value.
make_validator_seeds() {
  local out=$1 index=0 value
  for value in male abc-1.2 2021-02-28 2015-02-07T13:28:17-05:00 2015-02-07T13:28:17.239+02:00 13:28:17 \
    'http://example.org/a' 'http://hl7.org/fhir/StructureDefinition/Patient|4.0.1' 'a b' SGVsbG8= 1 -2147483648 \
    1.50e3 true 1234-5 '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'; do
    # bytes 0x60-0x6F: not the start of JSON, and 0x60 + index = index (mod 16)
    printf "\\$(printf '%03o' $((0x60 + index)))%s" "$value" >"$out/primitive-$index"
    index=$((index + 1))
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
  # Percent-escapes in path segments and query components, and a chunked body in two chunks.
  request GET '/fhir/Patient/a%2Db%2e1' "" ""
  request GET '/fhir/Subscription/s%31/$status?x=%41%42+c&y' "" ""
  request GET '/admin/quarantine?_count=%35&channel=econsult&since=2026-01-01T00%3A00%3A00Z' "" ""
  request POST '/ingest/claims/lakeshore-medicaid?asOf=2026-10-01%2B05' text/csv tests/data/mappers/lakeshore-medicaid/claims.csv
  n=$((n + 1))
  printf 'POST /fhir/$validate?profile=http%%3A%%2F%%2Fhl7.org%%2Ffhir%%2FStructureDefinition%%2FPatient HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Type: application/fhir+json\r\n\r\n10\r\n{"resourceType":\r\na\r\n"Patient"}\r\n0\r\n\r\n' >"$out/request-$n"
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
    ndjson_reader) make_ndjson_seeds "$out" ;;
    validator) make_validator_seeds "$out" ;;
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
