// SPDX-License-Identifier: Apache-2.0
#pragma once

// Local terminology: ValueSet expansion from `compose` and code lookup in CodeSystems, over the
// definitions registry (no terminology server).
//
// * include/exclude with `concept` lists, `filter`s (is-a, descendent-of, is-not-a, =, in,
//   regex on the code) on local CodeSystems, whole systems, and `valueSet` imports.
// * Systems that are not available locally (LOINC, SNOMED CT, ...) or only as fragments make
//   the expansion *open* for that system: a code from it cannot be judged and is accepted,
//   unless the ValueSet enumerates the codes of that system explicitly.
//
// Expansions and CodeSystem indexes are built once per URL on first use (std::call_once) and are
// immutable afterwards. The URL -> slot maps are published copy-on-write through an atomic
// pointer, so lookups on the validation path take no lock; only creating a slot for a URL seen
// for the first time takes a mutex.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "conformance/definitions/registry.h"

namespace fhir::terminology {

struct CodeSystemIndex {
  std::string url;
  std::string version;
  std::string content;  // complete, fragment, example, not-present, supplement
  bool case_sensitive = true;
  std::unordered_map<std::string, std::string> display;  // code -> display
  std::unordered_map<std::string, std::vector<std::string>> children;  // code -> child codes
  // code -> property code -> values (as text)
  std::unordered_map<std::string, std::unordered_map<std::string, std::vector<std::string>>> properties;
  bool complete() const { return content.empty() || content == "complete"; }
  bool has(std::string_view code) const { return display.count(std::string(code)) > 0; }
};

struct Expansion {
  std::string url;
  std::string name;     // ValueSet.title or name, for messages
  std::string version;
  bool found = false;   // the ValueSet is known
  std::unordered_set<std::string> codes;        // "system|code"
  std::unordered_set<std::string> bare_codes;   // "code" (for `code` elements without system)
  std::unordered_set<std::string> open_systems; // systems we cannot enumerate
  bool open = false;    // some part could not be expanded (unknown ValueSet import, ...)
  // code -> ordinalValue (decimal text) of the ValueSet's own compose.include concepts that carry
  // the http://hl7.org/fhir/StructureDefinition/ordinalValue extension (scores, e.g. PHQ-9 answers).
  std::unordered_map<std::string, std::string> ordinals;

  std::string versionedUrl() const { return version.empty() ? url : url + "|" + version; }
  std::string label() const { return name.empty() ? url : name; }
};

enum class Membership { kMember, kNotMember, kUnknown };

class Terminology {
 public:
  explicit Terminology(const definitions::Registry& registry);
  ~Terminology();
  Terminology(const Terminology&) = delete;
  Terminology& operator=(const Terminology&) = delete;

  // The expansion of `value_set` (canonical, may carry |version); never null (found == false
  // when the ValueSet is unknown).
  const Expansion& expand(std::string_view value_set) const;
  // The index of a local CodeSystem, or nullptr when the system is not available locally.
  const CodeSystemIndex* codeSystem(std::string_view system) const;
  const definitions::Registry& registry() const { return registry_; }

  // Whether system|code (system may be empty for a bare `code`) is in the ValueSet.
  Membership contains(const Expansion& expansion, std::string_view system,
                      std::string_view code) const;

  struct ExpansionSlot;
  struct CodeSystemSlot;

 private:
  template <typename Slot>
  struct SlotMap {
    std::atomic<const std::unordered_map<std::string, Slot*>*> current{nullptr};
    std::vector<std::unique_ptr<const std::unordered_map<std::string, Slot*>>> versions;
    std::vector<std::unique_ptr<Slot>> slots;
    std::mutex mutex;
  };
  template <typename Slot>
  Slot& slotFor(SlotMap<Slot>& map, std::string_view key) const;

  void build(ExpansionSlot& slot) const;
  void build(CodeSystemSlot& slot) const;

  const definitions::Registry& registry_;
  mutable SlotMap<ExpansionSlot> expansions_;
  mutable SlotMap<CodeSystemSlot> code_systems_;
};

}  // namespace fhir::terminology
