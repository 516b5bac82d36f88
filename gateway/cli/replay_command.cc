// SPDX-License-Identifier: Apache-2.0
// fhir-gateway replay: quarantined payloads through their channel again, dead letters back into
// their destination's outbox. It opens the store in the data directory itself: SQLite in WAL
// mode lets it write while a server runs on the same directory (each write waits for the
// other process's transaction), and that server's delivery worker finds the rows it queues
// within its idle poll; without a running server they are delivered when one starts.

#include <iostream>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "gateway/cli/commands.h"
#include "gateway/cli/runtime.h"
#include "gateway/ingest/pipeline.h"
#include "conformance/common/metrics.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kReplayHelp =
    "usage: fhir-gateway replay (--quarantine ID | --dead-letter ID | --all) [--data DIR] [--config FILE]\n"
    "\n"
    "Re-run a kept payload or delivery, in this process, on the store in the data directory.\n"
    "\n"
    "  --quarantine ID   run a quarantined payload again through the channel it came in on\n"
    "                    (e-consult, claims or roster of its payer) with the same mapping and\n"
    "                    validator as the server; the entry stays and records the replay\n"
    "  --dead-letter ID  put a dead letter back at the head of its destination's outbox\n"
    "  --all             every quarantined payload no replay has been accepted for yet, oldest\n"
    "                    first, then every dead letter\n"
    "  --data DIR        data directory (SQLite store gateway.db), overriding the config;\n"
    "                    default ./var\n"
    "  --config FILE     the gateway's configuration (payers, feeds), as given to serve; payer\n"
    "                    files replay only for payers it configures\n"
    "\n"
    "Prints one JSON line per item on stdout: {\"quarantine\": ID, \"channel\", \"status\" (the HTTP\n"
    "status the channel answered), \"result\": accepted|rejected|not-replayable|failed, and\n"
    "\"answer\" unless accepted} or {\"deadLetter\": ID, \"result\": queued}; --all ends with a\n"
    "summary line {\"replayed\": n, \"accepted\": n, \"rejected\": n, \"notReplayable\": n,\n"
    "\"deadLetters\": n}.\n"
    "Exit 0 when everything was accepted or queued, 1 when a payload was rejected again or\n"
    "cannot be replayed, 2 on a usage or environment error or an unknown ID.\n"
    "\n"
    "A server may run on the same data directory meanwhile: SQLite's WAL mode lets both write\n"
    "safely, and the server delivers what the replay queues within a fraction of a second.\n"
    "Without a running server, deliveries wait for the next 'fhir-gateway serve'.\n";

struct Options {
  std::optional<std::string> quarantine_id;
  std::optional<std::string> dead_letter_id;
  bool all = false;
  std::optional<std::string> data_dir;
  std::optional<std::string> config_path;
};

// Parses the arguments; returns the exit code when the command ends here (help, usage error).
std::optional<int> parseOptions(const Args& args, Io& io, Options& options) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::optional<std::string>* target = nullptr;
    if (arg == "--help" || arg == "-h") {
      io.out << kReplayHelp;
      return 0;
    } else if (arg == "--all") {
      options.all = true;
      continue;
    } else if (arg == "--quarantine") {
      target = &options.quarantine_id;
    } else if (arg == "--dead-letter") {
      target = &options.dead_letter_id;
    } else if (arg == "--data") {
      target = &options.data_dir;
    } else if (arg == "--config") {
      target = &options.config_path;
    } else {
      io.err << "fhir-gateway replay: unknown argument '" << arg << "' (see --help)\n";
      return 2;
    }
    if (i + 1 >= args.size()) {
      io.err << "fhir-gateway replay: " << arg << " needs a value\n";
      return 2;
    }
    *target = args[++i];
  }
  const int chosen = (options.quarantine_id ? 1 : 0) + (options.dead_letter_id ? 1 : 0) + (options.all ? 1 : 0);
  if (chosen != 1) {
    io.err << "fhir-gateway replay: give exactly one of --quarantine ID, --dead-letter ID or --all (see --help)\n";
    return 2;
  }
  return std::nullopt;
}

struct Tally {
  size_t replayed = 0;
  size_t accepted = 0;
  size_t rejected = 0;
  size_t not_replayable = 0;
  size_t dead_letters = 0;
  bool environment_error = false;
};

void printLine(const json::Document& line, Io& io) { io.out << json::serialize(line) << "\n"; }

void replayQuarantined(Pipeline& pipeline, const std::string& id, const std::string& channel, Io& io, Tally& tally) {
  ReplayOutcome outcome = pipeline.replayQuarantined(id);
  if (outcome.result == "not-found") {
    io.err << "fhir-gateway replay: no quarantined payload " << id << "\n";
    tally.environment_error = true;
    return;
  }
  json::Document line;
  line.SetObject();
  auto& allocator = line.GetAllocator();
  json::addString(line, "quarantine", id, allocator);
  if (!channel.empty()) json::addString(line, "channel", channel, allocator);
  json::addMember(line, "status", json::makeNumber(std::to_string(outcome.answer.status), allocator), allocator);
  json::addString(line, "result", outcome.result, allocator);
  if (outcome.result != "accepted") {
    json::Value answer;
    if (auto parsed = json::parse(outcome.answer.body); parsed.ok()) answer.CopyFrom(*parsed, allocator);
    else answer = json::makeString(outcome.answer.body, allocator);
    json::addMember(line, "answer", std::move(answer), allocator);
  }
  printLine(line, io);
  ++tally.replayed;
  if (outcome.result == "accepted") ++tally.accepted;
  else if (outcome.result == "failed") tally.environment_error = true;
  else if (outcome.result == "not-replayable") ++tally.not_replayable;
  else ++tally.rejected;
}

void replayDeadLetter(Store& store, const std::string& id_text, Io& io, Tally& tally) {
  int64_t id = 0;
  try {
    size_t used = 0;
    id = std::stoll(id_text, &used);
    if (used != id_text.size()) throw std::invalid_argument(id_text);
  } catch (const std::exception&) {
    io.err << "fhir-gateway replay: '" << id_text << "' is not a dead-letter id (a number)\n";
    tally.environment_error = true;
    return;
  }
  auto replayed = store.replayDeadLetter(id);
  if (!replayed.ok()) {
    io.err << "fhir-gateway replay: " << replayed.message() << "\n";
    tally.environment_error = true;
    return;
  }
  if (!*replayed) {
    io.err << "fhir-gateway replay: no dead letter " << id_text << "\n";
    tally.environment_error = true;
    return;
  }
  json::Document line;
  line.SetObject();
  json::addMember(line, "deadLetter", json::makeNumber(std::to_string(id), line.GetAllocator()), line.GetAllocator());
  json::addString(line, "result", "queued", line.GetAllocator());
  printLine(line, io);
  ++tally.dead_letters;
}

void replayAll(Pipeline& pipeline, Store& store, Io& io, Tally& tally) {
  auto entries = store.listQuarantineToReplay(1000000);
  if (!entries.ok()) {
    io.err << "fhir-gateway replay: " << entries.message() << "\n";
    tally.environment_error = true;
    return;
  }
  for (const QuarantineEntry& entry : *entries) replayQuarantined(pipeline, entry.id, entry.channel, io, tally);
  auto dead = store.listDeadLetters(1000000);
  if (!dead.ok()) {
    io.err << "fhir-gateway replay: " << dead.message() << "\n";
    tally.environment_error = true;
    return;
  }
  for (const OutboxItem& item : *dead) replayDeadLetter(store, std::to_string(item.id), io, tally);
  json::Document summary;
  summary.SetObject();
  auto& allocator = summary.GetAllocator();
  const std::vector<std::pair<const char*, size_t>> counts = {
      {"replayed", tally.replayed},           {"accepted", tally.accepted},
      {"rejected", tally.rejected},           {"notReplayable", tally.not_replayable},
      {"deadLetters", tally.dead_letters}};
  for (const auto& [key, count] : counts) {
    json::addMember(summary, key, json::makeNumber(std::to_string(count), allocator), allocator);
  }
  printLine(summary, io);
}

}  // namespace

int runReplay(const Args& args, Io& io) {
  Options options;
  if (auto done = parseOptions(args, io, options)) return *done;
  Config config;
  if (options.config_path) {
    auto loaded = loadConfig(*options.config_path);
    if (!loaded.ok()) {
      io.err << "fhir-gateway replay: " << loaded.message() << "\n";
      return 2;
    }
    config = std::move(*loaded);
  }
  if (options.data_dir) config.data_dir = *options.data_dir;

  auto runtime = loadRuntime(config);
  if (!runtime.ok()) {
    io.err << "fhir-gateway replay: " << runtime.message() << "\n";
    return 2;
  }
  Metrics metrics;
  Pipeline pipeline(config, (*runtime)->store, (*runtime)->validator, metrics, nullptr);
  pipeline.setSubscriptions((*runtime)->topics, &(*runtime)->registry);
  pipeline.setSpecs((*runtime)->specs);
  std::string host;
  uint16_t port = 0;
  auto base = splitListen(config.listen, host, port) ? publicBase(config, host, port)
                                                     : Result<std::string>(Error{"'" + config.listen + "' is not HOST:PORT"});
  if (!base.ok()) {
    io.err << "fhir-gateway replay: " << base.message() << "\n";
    return 2;
  }
  pipeline.setBaseUrl(*base + "/fhir");

  Tally tally;
  if (options.quarantine_id) replayQuarantined(pipeline, *options.quarantine_id, {}, io, tally);
  else if (options.dead_letter_id) replayDeadLetter(*(*runtime)->store, *options.dead_letter_id, io, tally);
  else replayAll(pipeline, *(*runtime)->store, io, tally);
  if (tally.environment_error) return 2;
  return tally.rejected + tally.not_replayable > 0 ? 1 : 0;
}

}  // namespace fhir::gateway::cli
