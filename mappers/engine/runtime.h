// SPDX-License-Identifier: Apache-2.0
#pragma once

// The run: evaluating a compiled spec over one record into a Bundle (engine internals).

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "mappers/engine/spec_model.h"
#include "mappers/readers/reader.h"

namespace fhir::mappers::engine {

// ---------------------------------------------------------------------------------------------
// Running.

inline std::string nowUtc() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S+00:00", &parts);
  return buffer;
}

// Where a scope's value sits in the record, as path steps, for issue locations only. Scopes are
// copied for every item and resource of every record and issues are rare, so the steps are kept
// inline as views of names that outlive the record's mapping (spec path steps, the record's
// member names, literals) or as array indexes; steps() spells them out when an issue needs them.
class Location {
 public:
  Location() = default;
  Location(std::initializer_list<std::string_view> names) {
    for (std::string_view name : names) push(name);
  }
  void push(std::string_view name) { add(Step{name.data(), static_cast<uint32_t>(name.size()), 0}); }
  void push(size_t index) { add(Step{nullptr, 0, static_cast<uint32_t>(index)}); }
  void pop() {
    if (!overflow_.empty()) overflow_.pop_back();
    else --size_;
  }
  std::vector<std::string> steps() const {
    std::vector<std::string> out;
    out.reserve(size_ + overflow_.size());
    for (size_t index = 0; index < size_; ++index) out.push_back(text(inline_[index]));
    for (const Step& step : overflow_) out.push_back(text(step));
    return out;
  }

 private:
  struct Step {
    const char* name;  // nullptr: an array index
    uint32_t size;
    uint32_t index;
  };
  static std::string text(const Step& step) {
    return step.name ? std::string(step.name, step.size) : std::to_string(step.index);
  }
  void add(Step step) {
    if (size_ < kInline && overflow_.empty()) inline_[size_++] = step;
    else overflow_.push_back(step);
  }
  static constexpr size_t kInline = 8;
  std::array<Step, kInline> inline_{};
  size_t size_ = 0;
  std::vector<Step> overflow_;  // steps beyond kInline
};

struct Scope {
  const json::Value* value;
  Location location;
  size_t index = 0;  // 1-based forEach index
};

// The nodes the last slot() call for a list of rules walked through, so that the next rule of
// the list sharing leading target steps with it (Rule::shared_steps) starts below them instead
// of finding them again. Only slot() changes the target between two rules of one list, and a
// node's place changes only when members are added to its parent: the cached nodes stay valid.
// A list's target starts empty but for the members linkSiblingRules() is told of.
struct SlotCache {
  static constexpr size_t kDepth = 8;
  const Rule* rule = nullptr;  // the rule of the last slot() call on `target`
  const json::Value* target = nullptr;
  std::array<json::Value*, kDepth> nodes{};  // nodes[k]: the value reached by step k
};

json::Value& slot(json::Value& object, const Rule& rule, json::Allocator& allocator, SlotCache& cache);

class Run {
 public:
  Run(const CompiledSpec& spec, const MapOptions& options, std::string payer_id, const PayerInfo* payer,
      std::string now)
      : spec_(spec), options_(options), payer_id_(std::move(payer_id)), payer_(payer), now_(std::move(now)) {}

  // Maps one record; false with issues when it has errors.
  bool map(const json::Value& record, const std::string& raw, const std::string& position, MappedBundle& out,
           IssueList& issues);

 private:
  std::string location(const std::vector<std::string>& steps) const {
    bool json_reader = spec_.reader == ReaderKind::kNdjson || spec_.reader == ReaderKind::kJson ||
                       spec_.reader == ReaderKind::kJsonEvents;
    // A posted event (mapRecord) has no line: its locations are plain JSON paths.
    if (json_reader && record_->IsObject() && !json::find(*record_, "@line")) return jsonPathOf(*record_, steps);
    return readers::describeLocation(*record_, steps, json_reader);
  }
  static std::string jsonPathOf(const json::Value& record, const std::vector<std::string>& steps);
  void error(const std::vector<std::string>& steps, const std::string& code, const std::string& message) {
    std::string where = location(steps);
    std::string diagnostics = where + ": " + message;
    // Two rules reading the same bad value report it once.
    for (const Issue& issue : issues_->issues()) {
      if (issue.diagnostics == diagnostics) return;
    }
    issues_->atLocation(Severity::kError, code, where, diagnostics);
  }
  // `text` with its {variables} replaced. The view is valid until the next call; templates
  // naming only run constants ({payer}, {spec}, ...) are expanded once per run.
  // `permanent`: set when the view is intern()ed.
  std::string_view expand(std::string_view text, const Scope& scope, bool* permanent = nullptr) const;
  // The "Type/id" of this record's resource `key` (not made per item), or nullptr.
  const std::string* referenceOf(std::string_view key) const {
    for (size_t index = 0; index < reference_count_; ++index) {
      if (references_[index].first == key) return &references_[index].second;
    }
    return nullptr;
  }
  std::string& setReference(std::string_view key);
  const json::Value* resolve(const SourcePath& path, const Scope& scope) const;
  // Evaluates `expr`; nullopt when absent (reported when required) or invalid (reported).
  std::optional<json::Value> evaluate(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                      bool& failed);
  bool test(const Condition& cond, const Scope& scope, json::Allocator& allocator, bool& failed);
  void apply(const Rule& rule, json::Value& target, const Scope& scope, json::Allocator& allocator, bool& failed,
             SlotCache& cache);
  // apply() for each rule of a list, in order, writing into `target`.
  void applyAll(const std::vector<Rule>& rules, json::Value& target, const Scope& scope, json::Allocator& allocator,
                bool& failed);
  std::vector<Scope> items(const Rule& rule, const Scope& scope) const;
  // The items `paths` reach from `scope`. Their locations view the paths' steps: `paths` must
  // outlive them (the spec's own paths do).
  std::vector<Scope> itemsOf(const std::vector<SourcePath>& paths, const Scope& scope) const;
  void itemsOf(const SourcePath& path, const Scope& scope, std::vector<Scope>& out) const;
  // Event-spec additions (mappers/specs/README.md, "Event specs").
  std::optional<json::Value> eventValue(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                        bool& failed);
  std::optional<json::Value> coverageOn(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                        bool& failed);
  bool eventTransform(const Transform& transform, json::Value& result, const std::vector<std::string>& where,
                      json::Allocator& allocator);
  void warnUnknownMembers(const json::Value& value, std::vector<std::string>& steps, IssueList& warnings) const;
  std::string recordIdOf(const Scope& root, json::Allocator& allocator, bool& failed);
  void mergeStored(json::Value& resource, json::Allocator& allocator) const;
  json::Value provenanceAgent(const Scope& root, json::Allocator& allocator, bool& failed);
  // Care-management additions: conditions over items, every instance of a forEach resource.
  bool testItems(const Condition& cond, const Scope& scope, json::Allocator& allocator, bool& failed);
  void applyReferences(const Rule& rule, json::Value& target, json::Allocator& allocator, bool& failed,
                       SlotCache& cache);

  const CompiledSpec& spec_;
  const MapOptions& options_;
  std::string payer_id_;
  const PayerInfo* payer_;
  std::string now_;
  const json::Value* record_ = nullptr;
  IssueList* issues_ = nullptr;
  IssueList* warnings_ = nullptr;  // the MappedBundle's
  std::string record_id_;
  // resource key -> "Type/id" for this record: the first reference_count_ entries (the others
  // keep their buffers for the next record).
  std::vector<std::pair<std::string_view, std::string>> references_;
  size_t reference_count_ = 0;
  mutable std::unordered_map<std::string_view, std::string_view> constant_expansions_;  // intern()ed
  mutable std::string expansion_;
  // Per-record work lists, members so that their buffers are reused from record to record.
  std::vector<const ResourceProgram*> produced_;
  std::vector<std::string> ids_;
  std::vector<Scope> scopes_;  // the item a resource made per item reads; else the root
  std::vector<Scope> program_scopes_;
  std::string joined_, text_;
  const json::Value* entries_ = nullptr;            // the Bundle entries built so far (coverageOn)
  // forEach resource key -> ("Type/id", the source item) per instance made ("references" rules).
  std::map<std::string, std::vector<std::pair<std::string, Scope>>> instances_;
  std::vector<std::pair<std::string, std::string>> last_ids_;  // per resource program: id parts, id
  std::string payer_reference_;  // "Organization/<id>" of the payer, the Provenance's agent
};

// runtime.cc helpers shared by the other parts of the engine.
std::vector<std::string> locationOf(const SourcePath& path, const Scope& scope);
std::string textOf(const json::Value& value);
void linkSiblingRules(std::vector<Rule>& rules, std::set<std::string> present = {});

}  // namespace fhir::mappers::engine
