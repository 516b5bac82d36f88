// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway map --source ID [--payer ID] [--config FILE] [--no-validate] FILE`
// (contracts/cli.md): one Bundle per record as NDJSON on stdout; on stderr one OperationOutcome
// line per rejected record, then the summary line. Exit 0 all accepted, 1 any rejected, 2 usage
// or environment error.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "conformance/validator/validator.h"
#include "gateway/cli/commands.h"
#include "gateway/config/config.h"
#include "mappers/engine/engine.h"
#include "gateway_paths.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kUsage =
    "usage: fhir-gateway map --source ID [--payer ID] [--config FILE] [--no-validate] FILE\n"
    "\n"
    "Maps a source file with spec ID (mappers/specs: lakeshore-medicaid, northwind-commercial,\n"
    "x12-837p, roster, econsult, econsult-v2, care-management) record by record. Event sources take\n"
    "NDJSON or one JSON object (econsult-v2: one or more HL7 v2 messages). Prints one FHIR Bundle per\n"
    "claim, roster row or event as NDJSON on stdout; on stderr one OperationOutcome JSON line per\n"
    "rejected record, then the summary {\"records\": n, \"accepted\": n, \"rejected\": n,\n"
    "\"seconds\": s}, and a progress line while stderr is a terminal. FILE '-' reads stdin.\n"
    "\n"
    "  --source ID     the source spec\n"
    "  --payer ID      the payer for formats that don't carry it (default: the spec id)\n"
    "  --config FILE   gateway configuration: payer names and identifiers (e-consult events name\n"
    "                  their payers: without it every payerId is unknown)\n"
    "  --no-validate   skip validation against the alignment profiles\n"
    "\n"
    "A record larger than limits.maxRecordBytes (the configuration's, default 1 MiB) is rejected\n"
    "naming its size and SHA-256, as serve rejects it in a payer file.\n"
    "\n"
    "Exit status: 0 every record accepted, 1 some record rejected, 2 usage or environment error.\n";

class ConfigDirectory final : public mappers::Directory {
 public:
  explicit ConfigDirectory(const Config* config) : config_(config) {}

  // mappers::Directory
  std::optional<mappers::PayerInfo> payer(std::string_view payer_id) const override {
    if (!config_) return std::nullopt;
    const PayerConfig* found = config_->findPayer(payer_id);
    if (!found) return std::nullopt;
    return mappers::PayerInfo{found->id, found->name, found->identifier_system, found->identifier_value};
  }
  std::vector<fhir::CoverageFact> coverageOf(std::string_view) const override { return {}; }

 private:
  const Config* config_;
};

// A one-line progress bar on a terminal, redrawn at most five times a second.
class Progress {
 public:
  Progress(bool enabled, std::ostream& err, std::ifstream* file, std::streamoff size)
      : enabled_(enabled), err_(err), file_(file), size_(size) {}
  void update(size_t records) {
    if (!enabled_ || (records & 255) != 0) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    double fraction = 0;
    if (file_ && size_ > 0) fraction = static_cast<double>(file_->tellg()) / static_cast<double>(size_);
    if (fraction < 0 || fraction > 1) fraction = 1;
    int filled = static_cast<int>(fraction * 30);
    err_ << "\r[" << std::string(filled, '#') << std::string(30 - filled, '.') << "] "
         << static_cast<int>(fraction * 100) << "% " << records << " records" << std::flush;
    drawn_ = true;
  }
  void clear() {
    if (drawn_) err_ << "\r\033[K" << std::flush;
    drawn_ = false;
  }

 private:
  bool enabled_;
  std::ostream& err_;
  std::ifstream* file_;
  std::streamoff size_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

int runMap(const Args& args, Io& io) {
  std::string source, payer, config_path, file;
  bool validate = true;
  for (size_t index = 0; index < args.size(); ++index) {
    const std::string& arg = args[index];
    auto needValue = [&](const char* flag) -> const std::string* {
      if (index + 1 >= args.size()) {
        io.err << "fhir-gateway map: " << flag << " needs a value\n";
        return nullptr;
      }
      return &args[++index];
    };
    if (arg == "--help" || arg == "-h") {
      io.out << kUsage;
      return 0;
    } else if (arg == "--source" || arg == "--payer" || arg == "--config") {
      const std::string* value = needValue(arg.c_str());
      if (!value) return 2;
      (arg == "--source" ? source : arg == "--payer" ? payer : config_path) = *value;
    } else if (arg == "--no-validate") {
      validate = false;
    } else if (arg.size() > 1 && arg[0] == '-') {
      io.err << "fhir-gateway map: unknown option '" << arg << "' (see --help)\n";
      return 2;
    } else if (!file.empty()) {
      io.err << "fhir-gateway map: one FILE only (see --help)\n";
      return 2;
    } else {
      file = arg;
    }
  }
  if (source.empty() || file.empty()) {
    io.err << "fhir-gateway map: --source ID and FILE are required (see --help)\n";
    return 2;
  }
  auto library = mappers::engine::SpecLibrary::load({});
  if (!library.ok()) {
    io.err << "fhir-gateway map: " << library.message() << "\n";
    return 2;
  }
  if (!(*library)->has(source)) {
    std::string known;
    for (const std::string& id : (*library)->ids()) known += (known.empty() ? "" : ", ") + id;
    io.err << "fhir-gateway map: unknown source '" << source << "' (known: " << known << ")\n";
    return 2;
  }
  std::optional<Config> config;
  if (!config_path.empty()) {
    auto loaded = loadConfig(config_path);
    if (!loaded.ok()) {
      io.err << "fhir-gateway map: " << loaded.message() << "\n";
      return 2;
    }
    config = std::move(*loaded);
    if (!payer.empty() && !config->findPayer(payer)) {
      io.err << "fhir-gateway map: payer '" << payer << "' is not in " << config_path << "\n";
      return 2;
    }
  }
  ValidatorPtr validator;
  if (validate) {
    ValidatorOptions options;
    options.extra_paths.push_back(std::string(GATEWAY_PROFILES_DIR) + "/alignment/package");
    auto created = createValidator(options);
    if (!created.ok()) {
      io.err << "fhir-gateway map: " << created.message() << "\n";
      return 2;
    }
    validator = *created;
  }

  std::ifstream in;
  std::istream* input = &io.in;
  std::streamoff size = 0;
  if (file != "-") {
    in.open(file, std::ios::binary | std::ios::ate);
    if (!in) {
      io.err << "fhir-gateway map: cannot read " << file << "\n";
      return 2;
    }
    size = in.tellg();
    in.seekg(0);
    input = &in;
  }
  ConfigDirectory directory(config ? &*config : nullptr);
  mappers::engine::MapOptions options;
  options.payer_id = payer;
  options.directory = &directory;
  options.source_name = file == "-" ? "stdin" : file.substr(file.find_last_of('/') + 1);
  options.validator = validator.get();
  // limits.maxRecordBytes as serve applies it to a payer file (the configuration's, else the
  // default): a record over it is rejected by its size and hash, never held whole.
  options.max_record_bytes = static_cast<size_t>(config ? config->limits.max_record_bytes : LimitsConfig{}.max_record_bytes);

  bool terminal = &io.err == &std::cerr && isatty(STDERR_FILENO);
  Progress progress(terminal, io.err, file == "-" ? nullptr : &in, size);
  std::string buffer;
  buffer.reserve(1 << 20);
  size_t records = 0;
  auto start = std::chrono::steady_clock::now();
  auto summary = (*library)->mapSource(
      source, *input, options,
      [&](mappers::engine::MappedBundle& mapped) {
        json::serializeTo(mapped.bundle, buffer);
        buffer.push_back('\n');
        if (buffer.size() >= (1 << 20)) {
          io.out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
          buffer.clear();
        }
        progress.update(++records);
      },
      [&](mappers::engine::Rejection& rejection) {
        progress.clear();
        io.err << toOperationOutcomeJson(rejection.issues) << "\n";
        progress.update(++records);
      });
  io.out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  io.out.flush();
  progress.clear();
  if (!summary.ok()) {
    io.err << "fhir-gateway map: " << summary.message() << "\n";
    return 2;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[160];
  std::snprintf(line, sizeof line, "{\"records\": %zu, \"accepted\": %zu, \"rejected\": %zu, \"seconds\": %.3f}\n",
                summary->records, summary->accepted, summary->rejected, seconds);
  io.err << line << std::flush;
  return summary->rejected > 0 ? 1 : 0;
}

}  // namespace fhir::gateway::cli
