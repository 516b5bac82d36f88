// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway measure --measure ID --period START/END --subject REF [--config FILE] [--data DIR]`
// (contracts/cli.md, issue 20): the same measure::evaluate as `$evaluate-measure`, over the store
// of the data directory (or the configuration's PostgreSQL store); prints the MeasureReport.
#include <iostream>
#include <optional>
#include <string>

#include "conformance/common/time_util.h"
#include "gateway/cli/commands.h"
#include "gateway/cli/runtime.h"
#include "gateway/measure/measure.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kMeasureHelp =
    "usage: fhir-gateway measure --measure ID --period START/END --subject REF [--config FILE] [--data DIR]\n"
    "\n"
    "Evaluate one of the alignment guide's measures over the store, as GET\n"
    "/fhir/Measure/ID/$evaluate-measure does (a population report, cells under 11 suppressed),\n"
    "and print the MeasureReport (one JSON line) on stdout.\n"
    "\n"
    "  --measure ID       the Measure's id: attributed-members, econsult-timeliness,\n"
    "                     hrsn-screening, care-plans, comanagement, referral-completion,\n"
    "                     billing-claims\n"
    "  --period START/END the measurement period, inclusive dates: 2026-01-01/2026-12-31\n"
    "  --subject REF      Group/ID (a practice's attribution list of one payer),\n"
    "                     Organization/ID (a practice: its lists of every payer) or Patient/ID\n"
    "                     (then an individual report)\n"
    "  --config FILE      the gateway's configuration: its dataDir and store (SQLite or\n"
    "                     PostgreSQL)\n"
    "  --data DIR         data directory (SQLite store gateway.db), overriding the config;\n"
    "                     default ./var\n"
    "\n"
    "Reads only; a server may run on the same store meanwhile. Exit 0 with the report, 1 when a\n"
    "measure's criteria fail on the stored data, 2 on a usage or environment error (an unknown\n"
    "measure or subject, a bad period, a store that cannot be opened), with one line on stderr.\n";

}  // namespace

int runMeasure(const Args& args, Io& io) {
  std::optional<std::string> measure_id, period, subject, config_path, data_dir;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      io.out << kMeasureHelp;
      return 0;
    }
    std::optional<std::string>* target = arg == "--measure" ? &measure_id
                                         : arg == "--period" ? &period
                                         : arg == "--subject" ? &subject
                                         : arg == "--config" ? &config_path
                                         : arg == "--data"   ? &data_dir
                                                             : nullptr;
    if (target == nullptr || i + 1 >= args.size()) {
      io.err << "fhir-gateway measure: unknown or incomplete option '" << arg << "'\n" << kMeasureHelp;
      return 2;
    }
    *target = args[++i];
  }
  if (!measure_id || !period || !subject) {
    io.err << "fhir-gateway measure: --measure, --period and --subject are required\n" << kMeasureHelp;
    return 2;
  }
  const size_t slash = period->find('/');
  if (slash == std::string::npos) {
    io.err << "fhir-gateway measure: --period is START/END (2026-01-01/2026-12-31): " << *period << "\n";
    return 2;
  }
  auto library = measure::MeasureLibrary::bundled();
  if (!library.ok()) {
    io.err << "fhir-gateway measure: the measures cannot be loaded: " << library.message() << "\n";
    return 2;
  }
  const measure::CompiledMeasure* found = (*library)->find(*measure_id);
  if (found == nullptr) {
    io.err << "fhir-gateway measure: no Measure/" << *measure_id << "\n";
    return 2;
  }
  Config config;
  if (config_path) {
    auto loaded = loadConfig(*config_path);
    if (!loaded.ok()) {
      io.err << "fhir-gateway measure: " << loaded.message() << "\n";
      return 2;
    }
    config = std::move(*loaded);
  }
  if (data_dir) config.data_dir = *data_dir;
  auto store = openStore(config);
  if (!store.ok()) {
    io.err << "fhir-gateway measure: " << store.message() << "\n";
    return 2;
  }
  measure::EvaluateParams params;
  params.period_start = period->substr(0, slash);
  params.period_end = period->substr(slash + 1);
  params.subject = *subject;
  params.report_type = subject->rfind("Patient/", 0) == 0 ? "subject" : "population";
  params.now = nowIso();
  const std::string base_url = config.public_base_url.empty() ? "http://localhost/fhir" : config.public_base_url + "/fhir";
  auto report = measure::evaluate(*found, params, measure::storeSearch(**store, base_url));
  if (!report.ok()) {
    const std::string& message = report.message();
    io.err << "fhir-gateway measure: " << message << "\n";
    return message.rfind("exception: ", 0) == 0 ? 1 : 2;
  }
  io.out << *report << "\n";
  return 0;
}

}  // namespace fhir::gateway::cli
