// SPDX-License-Identifier: Apache-2.0
// Mapper throughput (docs/BENCHMARKS.md, section Mappers): lakeshore-medicaid CSV claims of two
// lines mapped and serialized (map only, and map + validate against the alignment profiles), and
// the X12 837P reader's parse rate. Inputs are generated in memory; output is serialized and
// dropped, as `map ... > /dev/null` does.

#include <benchmark/benchmark.h>

#include <sstream>
#include <string>

#include "conformance/json/json.h"
#include "conformance/validator/validator.h"
#include "mappers/engine/engine.h"
#include "mappers/readers/x12/x12_reader.h"
#include "gateway_paths.h"

namespace {

using fhir::mappers::engine::MapOptions;
using fhir::mappers::engine::MappedBundle;
using fhir::mappers::engine::Rejection;
using fhir::mappers::engine::SpecLibrary;

std::string csvClaims(size_t claims) {
  static const char* kNpis[] = {"1467583922", "1881726354", "1972635480", "1316258429"};
  std::string text =
      "claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,billing_npi,"
      "billing_tin,dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,dx_1,dx_2,dx_3,dx_4,"
      "units,charge_amount,paid_amount,claim_status\r\n";
  char row[512];
  for (size_t claim = 1; claim <= claims; ++claim) {
    for (int line = 1; line <= 2; ++line) {
      std::snprintf(row, sizeof row,
                    "LC-%zu,%d,LMC%08zu,Okafor,Adaeze,19610319,F,%s,1093817462,361234567,202610%02zu,202610%02zu,11,%s,"
                    ",,E119,I10,,,1,%s,%s,%c\r\n",
                    claim, line, claim % 5000000, kNpis[claim % 4], 1 + claim % 28, 1 + claim % 28,
                    line == 1 ? "99214" : "83036", line == 1 ? "180.00" : "65.00", line == 1 ? "112.50" : "0.00",
                    "PDA"[claim % 3]);
      text += row;
    }
  }
  return text;
}

const SpecLibrary& library() {
  static const std::unique_ptr<SpecLibrary> loaded = [] {
    auto result = SpecLibrary::load({});
    if (!result.ok()) std::abort();
    return std::move(*result);
  }();
  return *loaded;
}

void mapClaims(benchmark::State& state, const fhir::Validator* validator) {
  const size_t claims = static_cast<size_t>(state.range(0));
  const std::string input = csvClaims(claims);
  MapOptions options;
  options.payer_id = "lakeshore-medicaid";
  options.now = "2026-10-03T09:13:00-05:00";
  options.validator = validator;
  std::string out;
  size_t accepted = 0;
  bool reported = false;
  for (auto _ : state) {
    std::istringstream stream(input);
    auto summary = library().mapSource(
        "lakeshore-medicaid", stream, options,
        [&](MappedBundle& mapped) {
          out.clear();
          fhir::json::serializeTo(mapped.bundle, out);
          ++accepted;
        },
        [&](Rejection& rejection) {
          if (!reported) std::fprintf(stderr, "%s\n", fhir::toOperationOutcomeJson(rejection.issues).c_str());
          reported = true;
        });
    benchmark::DoNotOptimize(summary);
  }
  if (accepted != claims * static_cast<size_t>(state.iterations())) state.SkipWithError("claims were rejected");
  state.counters["lines/s"] = benchmark::Counter(static_cast<double>(2 * claims), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bundles/s"] = benchmark::Counter(static_cast<double>(claims), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MapCsvClaims(benchmark::State& state) { mapClaims(state, nullptr); }
BENCHMARK(BM_MapCsvClaims)->Arg(20000)->Unit(benchmark::kMillisecond);

void BM_MapValidateCsvClaims(benchmark::State& state) {
  static const fhir::ValidatorPtr validator = [] {
    fhir::ValidatorOptions options;
    options.extra_paths.push_back(std::string(GATEWAY_PROFILES_DIR) + "/alignment/package");
    auto created = fhir::createValidator(options);
    if (!created.ok()) std::abort();
    return *created;
  }();
  mapClaims(state, validator.get());
}
BENCHMARK(BM_MapValidateCsvClaims)->Arg(2000)->Unit(benchmark::kMillisecond);

// An interchange with `claims` claims of two service lines each (two HI segments, a rendering
// provider), alternating subscriber-patients and dependents.
std::string x12Interchange(size_t claims) {
  std::string body;
  size_t segments = 0;
  auto add = [&](const std::string& segment) {
    body += segment;
    body += "~\n";
    ++segments;
  };
  add("ST*837*0001*005010X222A1");
  add("BHT*0019*00*B1*20261002*1430*CH");
  add("NM1*41*2*NORTHSHORE FAMILY MEDICINE*****46*NSFM01");
  add("NM1*40*2*LAKESHORE MEDICAID MCO*****46*LMC01");
  add("HL*1**20*1");
  add("NM1*85*2*NORTHSHORE FAMILY MEDICINE*****XX*1093817462");
  add("N3*400 LAKE SHORE DR");
  add("N4*CHICAGO*IL*606110001");
  add("REF*EI*361234567");
  size_t hl = 1;
  for (size_t claim = 0; claim < claims; ++claim) {
    bool dependent = claim % 2 == 1;
    add("HL*" + std::to_string(++hl) + "*1*22*" + (dependent ? "1" : "0"));
    add(std::string("SBR*P*") + (dependent ? "" : "18") + "*******MC");
    add("NM1*IL*1*OKAFOR*ADAEZE*N***MI*LMC" + std::to_string(10000000 + claim));
    add("DMG*D8*19610319*F");
    add("NM1*PR*2*LAKESHORE MEDICAID MCO*****PI*LMC01");
    if (dependent) {
      add("HL*" + std::to_string(hl + 1) + "*" + std::to_string(hl) + "*23*0");
      ++hl;
      add("PAT*19");
      add("NM1*QC*1*OKAFOR*EMEKA");
      add("DMG*D8*20120511*M");
    }
    add("CLM*NS-" + std::to_string(claim) + "*245.00***11:B:1*Y*A*Y*Y");
    add("HI*ABK:E119*ABF:I10");
    add("HI*ABF:Z794");
    add("NM1*82*1*WHITFIELD*DANA****XX*1467583922");
    add("PRV*PE*PXC*207Q00000X");
    add("LX*1");
    add("SV1*HC:99214:25*180.00*UN*1***1:2");
    add("DTP*472*D8*20261001");
    add("LX*2");
    add("SV1*HC:83036*65.00*UN*1***1");
    add("DTP*472*D8*20261001");
  }
  add("SE*" + std::to_string(segments + 1) + "*0001");
  return "ISA*00*          *00*          *ZZ*NORTHSHOREBILL *ZZ*LAKESHOREMCD   *261002*1430*^*00501*000000101*0*P*:~\n"
         "GS*HC*NORTHSHOREBILL*LAKESHOREMCD*20261002*1430*101*X*005010X222A1~\n" +
         body + "GE*1*101~\nIEA*1*000000101~\n";
}

void BM_X12Parse(benchmark::State& state) {
  const std::string input = x12Interchange(static_cast<size_t>(state.range(0)));
  size_t records = 0;
  for (auto _ : state) {
    std::istringstream stream(input);
    fhir::mappers::readers::x12::X12Reader reader(stream);
    fhir::mappers::readers::SourceRecord record;
    while (true) {
      fhir::IssueList issues;
      auto status = reader.next(record, issues);
      if (status == fhir::mappers::readers::ReadStatus::kEnd) break;
      if (status != fhir::mappers::readers::ReadStatus::kRecord) state.SkipWithError("unexpected rejection");
      ++records;
    }
  }
  benchmark::DoNotOptimize(records);
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
  state.counters["claims/s"] = benchmark::Counter(static_cast<double>(state.range(0)), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_X12Parse)->Arg(20000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
