// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway store copy --config FILE [--data DIR]`: copies the SQLite store of the data
// directory into the PostgreSQL store the configuration's `store` block names (issue 17), so a
// site can move up to several gateways. Stop the SQLite gateway first; the target must be empty.
// Prints one JSON line: {"copied": {"<table>": rows, ...}}.
#include <fstream>
#include <ostream>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway/cli/commands.h"
#include "gateway/config/config.h"
#include "gateway/store/pg_store.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kUsage =
    "usage: fhir-gateway store copy --config FILE [--data DIR]\n"
    "  Copies the SQLite store in DIR (default: the configuration's dataDir) into the empty\n"
    "  PostgreSQL store of the configuration's \"store\" block, in one transaction.\n";

}  // namespace

int runStore(const Args& args, Io& io) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    io.out << kUsage;
    return 0;
  }
  if (args.empty() || args[0] != "copy") {
    io.err << "fhir-gateway store: expected 'copy'\n" << kUsage;
    return 2;
  }
  std::string config_path;
  std::string data_dir;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      io.out << kUsage;
      return 0;
    }
    if ((args[i] == "--config" || args[i] == "--data") && i + 1 < args.size()) {
      (args[i] == "--config" ? config_path : data_dir) = args[i + 1];
      ++i;
      continue;
    }
    io.err << "fhir-gateway store copy: unknown or incomplete option '" << args[i] << "'\n" << kUsage;
    return 2;
  }
  if (config_path.empty()) {
    io.err << "fhir-gateway store copy: --config FILE is required (its \"store\" block names the target)\n";
    return 2;
  }
  auto config = loadConfig(config_path);
  if (!config.ok()) {
    io.err << "fhir-gateway store copy: " << config.message() << "\n";
    return 2;
  }
  if (config->store.kind != "postgresql") {
    io.err << "fhir-gateway store copy: the configuration's store is not {\"kind\": \"postgresql\", ...}\n";
    return 2;
  }
  PostgresStoreOptions target;
  target.url = config->store.url;
  target.sslmode = config->store.sslmode;
  target.schema = config->store.schema;
  if (!config->store.password_file.empty()) {
    std::ifstream in(config->store.password_file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    target.password = text.str();
    if (!target.password.empty() && target.password.back() == '\n') target.password.pop_back();
    if (!target.password.empty() && target.password.back() == '\r') target.password.pop_back();
  }
  auto copied = copySqliteToPostgres(data_dir.empty() ? config->data_dir : data_dir, target);
  if (!copied.ok()) {
    io.err << "fhir-gateway store copy: " << copied.message() << "\n";
    return 2;
  }
  json::Document line;
  line.SetObject();
  auto& allocator = line.GetAllocator();
  json::Value tables(rapidjson::kObjectType);
  for (const auto& [table, rows] : *copied) {
    json::addMember(tables, table, json::makeNumber(std::to_string(rows), allocator), allocator);
  }
  json::addMember(line, "copied", std::move(tables), allocator);
  io.out << json::serialize(line) << "\n";
  return 0;
}

}  // namespace fhir::gateway::cli
